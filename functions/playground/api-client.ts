import type { CreatePredictionBody, PredictionView } from '../api/schemas.ts';

/**
 * The page's calls to the API, all on its own origin (paths, never hosts). Every failure becomes
 * an ApiFailure whose message says in plain words what went wrong, with the server's own message
 * when it sent one ({error: {code, message, param}}).
 */
export class ApiFailure extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly serverMessage: string | null,
    /** The value the server refused (its error body's `param`: `input.sampling.temperature`). */
    readonly param: string | null = null,
    /** What failed, in words ("Starting the prediction"). */
    readonly action: string | null = null,
  ) {
    super(message);
    this.name = 'ApiFailure';
  }
}

export interface Upload {
  upload_id: string;
  url: string;
  headers: Record<string, string>;
  max_bytes: number;
}

export class ApiClient {
  constructor(private readonly key: () => string) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const key = this.key().trim();
    return { ...extra, ...(key ? { authorization: `Bearer ${key}` } : {}) };
  }

  createPrediction(body: CreatePredictionBody): Promise<PredictionView> {
    return this.json('POST', '/v1/predictions', body, 'Starting the prediction');
  }

  getPrediction(id: string): Promise<PredictionView> {
    return this.json('GET', `/v1/predictions/${encodeURIComponent(id)}`, undefined, 'Reading the prediction');
  }

  cancel(id: string): Promise<PredictionView> {
    return this.json('POST', `/v1/predictions/${encodeURIComponent(id)}/cancel`, undefined, 'Canceling');
  }

  /** POST /v1/uploads, then the file straight to the presigned URL the server gave. */
  async upload(file: File): Promise<string> {
    const up = await this.json<Upload>('POST', '/v1/uploads', { content_type: file.type }, `Uploading ${file.name}`);
    if (file.size > up.max_bytes) throw new ApiFailure(`${file.name} is ${mb(file.size)}; the server takes images up to ${mb(up.max_bytes)}.`, null, null);
    let res: Response;
    try {
      res = await fetch(up.url, { method: 'PUT', headers: up.headers, body: file });
    } catch {
      throw new ApiFailure(`Uploading ${file.name} failed: the storage server could not be reached.`, null, null);
    }
    if (!res.ok) throw new ApiFailure(`Uploading ${file.name} failed: the storage server answered ${res.status} ${res.statusText}.`, res.status, null);
    return up.upload_id;
  }

  private async json<T>(method: string, path: string, body: unknown, what: string): Promise<T> {
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiFailure(`${what} failed: the server could not be reached. Is it still running?`, null, null);
    }
    if (res.ok) return (await res.json()) as T;
    throw await failureOf(res, what);
  }
}

/** An error response in plain words, keeping the server's message. */
export async function failureOf(res: Response, what: string): Promise<ApiFailure> {
  const text = await res.text().catch(() => '');
  let serverMessage: string | null = null;
  let param: string | null = null;
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string; param?: string | null } };
    serverMessage = parsed.error?.message ?? null;
    param = parsed.error?.param ?? null;
  } catch {
    serverMessage = text.trim().slice(0, 300) || null;
  }
  const why = STATUS_WORDS[res.status] ?? `the server answered ${res.status}`;
  const detail = serverMessage ? `: ${serverMessage}${param && !serverMessage.includes(param) ? ` (${param})` : ''}` : '.';
  return new ApiFailure(`${what} failed — ${why}${detail}`, res.status, serverMessage, param, what);
}

const STATUS_WORDS: Record<number, string> = {
  400: 'the request is not well-formed',
  401: 'the API key is missing or wrong',
  404: 'not found (it may belong to another key, or the server was reset)',
  409: 'the same request is still running',
  413: 'too large',
  415: 'the server cannot read that kind of file',
  422: 'the server refused a value',
  429: 'too many requests; try again shortly',
  500: 'the server hit an internal error',
  503: 'the server is not ready',
};

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
