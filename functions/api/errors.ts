import type { Context, ErrorHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ZodError } from 'zod';
import { isTransientError } from '../../contract/transient-error.ts';
import { ImageInputError } from '../../model/preprocess/image-processor.ts';
import { InvalidInputError } from '../prepare-job.ts';

/**
 * Every error the API returns has one shape, `{error: {code, message, param}}`, so clients parse
 * one thing. Bad input is always a 4xx: a 500 means a bug or a broken dependency, never the caller.
 *
 *   400 malformed: not JSON, wrong types, unknown or missing fields
 *   401 no or wrong API key          404 no such resource (or another key's)
 *   405 a known path with another method (Allow lists the methods it takes)
 *   409 an identical request with the same Idempotency-Key is still running
 *   413 body, image bytes or image pixels over a limit
 *   415 body not JSON, or an image no decoder reads
 *   422 well-formed but unacceptable: a value out of range, too many tokens, a token outside the
 *       vocabulary, an image URL we refuse to fetch, an Idempotency-Key reused with another body
 *   503 storage or queue unreachable (Retry-After): the same request may succeed later
 */
export type ErrorStatus = 400 | 401 | 404 | 405 | 409 | 413 | 415 | 422 | 500 | 503 | 504;

export type OpenAiErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error';

export interface ErrorBody {
  /** `type` is OpenAI's class of the error, beside our own `code`, so its clients read our errors. */
  error: { code: string; type: OpenAiErrorType; message: string; param: string | null };
}

export function openAiErrorType(status: number): OpenAiErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 404) return 'not_found_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

export class ApiError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    /** Extra response headers (a 409's Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get body(): ErrorBody {
    return { error: { code: this.code, type: openAiErrorType(this.status), message: this.message, param: this.param } };
  }
}

export function errorResponse(c: Context, e: ApiError): Response {
  const headers: Record<string, string> = { ...(e.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : e.status === 503 ? { 'Retry-After': '1' } : {}), ...e.headers };
  return c.json(e.body, e.status as ContentfulStatusCode, headers);
}

/** A zod path as a caller writes it: `input.images[2]`, `input.logit_bias.123`. */
export function paramOf(path: readonly PropertyKey[]): string | null {
  if (path.length === 0) return null;
  return path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), '');
}

// A value of the right type that breaks a bound or a format is "unprocessable"; a wrong type,
// an unknown field or a missing one is a malformed request.
const UNPROCESSABLE = new Set(['too_big', 'too_small', 'invalid_value', 'invalid_format', 'not_multiple_of', 'custom']);

/**
 * The first zod issue as an ApiError. `data` is what was validated: a field that is absent is
 * "missing" (400) whatever check zod reports for it (zod says invalid_value for a missing enum).
 */
export function fromZodError(error: ZodError, data?: unknown): ApiError {
  let issue = error.issues[0];
  // a union (`stop`: a string or a list) whose value has one branch's type: that branch's complaint
  if (issue.code === 'invalid_union') {
    const base = issue.path;
    const branch = issue.errors.find((b) => b.length > 0 && !b.some((i) => i.code === 'invalid_type' && i.path.length === 0));
    if (branch) issue = { ...branch[0], path: [...base, ...branch[0].path] } as typeof issue;
  }
  let path: PropertyKey[] = [...issue.path];
  let message = issue.message;
  let unprocessable = UNPROCESSABLE.has(issue.code);
  if (issue.code === 'unrecognized_keys') {
    path = [...path, issue.keys[0]];
    message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  } else if (issue.code === 'invalid_key') {
    message = `invalid key: ${issue.issues[0]?.message ?? message}`;
  } else if (data !== undefined && valueAt(data, path) === undefined) {
    message = 'required';
    unprocessable = false;
  }
  const param = paramOf(path);
  return new ApiError(unprocessable ? 422 : 400, unprocessable ? 'invalid_value' : 'invalid_request', param ? `${param}: ${message}` : message, param);
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** A domain error from the shared preparation code, with its param placed under `prefix` (`input.` for predictions). */
export function fromInputError(e: InvalidInputError | ImageInputError, prefix: string, imageParam = 'images'): ApiError {
  if (e instanceof InvalidInputError) return new ApiError(422, 'invalid_value', e.message, `${prefix}${e.param}`);
  const param = `${prefix}${imageParam}`;
  switch (e.code) {
    case 'TOO_LARGE':
      return new ApiError(413, 'image_too_large', e.message, param);
    case 'UNDECODABLE':
      return new ApiError(415, 'unsupported_image', e.message, param);
    default:
      return new ApiError(422, 'invalid_image', e.message, param);
  }
}

/** The app's last resort: known errors keep their status, Hono's own (bad JSON, 415, body limit) get our shape. */
export const onError: ErrorHandler = (err, c) => {
  if (err instanceof ApiError) return errorResponse(c, err);
  if (err instanceof InvalidInputError || err instanceof ImageInputError) return errorResponse(c, fromInputError(err, ''));
  if (err instanceof HTTPException) {
    const status = err.status;
    const known: Record<number, [ErrorStatus, string]> = {
      400: [400, 'invalid_json'],
      413: [413, 'payload_too_large'],
      415: [415, 'unsupported_media_type'],
    };
    const [s, code] = known[status] ?? [status >= 500 ? 500 : 400, 'invalid_request'];
    const message = status === 415 ? 'the request body must be JSON (Content-Type: application/json)' : err.message || 'bad request';
    return errorResponse(c, new ApiError(s, code, message));
  }
  if (isTransientError(err)) return errorResponse(c, new ApiError(503, 'service_unavailable', `storage or queue unavailable, retry later: ${err.message}`));
  console.error('unhandled error', err);
  return errorResponse(c, new ApiError(500, 'internal_error', 'internal error'));
};
