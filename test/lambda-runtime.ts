import { Writable } from 'node:stream';

/**
 * What the Lambda runtime gives a response-streaming handler behind a Function URL, as it documents
 * it (the runtime itself cannot run here): `awslambda.streamifyResponse(fn)` marks fn as a
 * streaming handler, and `HttpResponseStream.from(stream, metadata)` writes the metadata as JSON
 * followed by eight NUL bytes, then the body as it comes. Events are payload v2.
 */
export type StreamingHandler = (event: unknown, stream: Writable, context: unknown) => Promise<void>;

export interface FunctionUrlResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

const DELIMITER = Buffer.alloc(8);
export const FUNCTION_URL_HOST = 'abc.lambda-url.us-east-1.on.aws';

/** Puts `awslambda` on globalThis (before the handler module loads); returns the undo. */
export function installLambdaGlobals(): () => void {
  (globalThis as Record<string, unknown>).awslambda = {
    streamifyResponse: (fn: unknown) => fn,
    HttpResponseStream: {
      from(stream: Writable, metadata: object) {
        stream.write(Buffer.concat([Buffer.from(JSON.stringify(metadata)), DELIMITER]));
        return stream;
      },
    },
  };
  return () => delete (globalThis as Record<string, unknown>).awslambda;
}

/** A Function URL event through the handler; resolves with the streamed metadata and body. */
export async function invokeFunctionUrl(handler: StreamingHandler, method: string, path: string, body?: unknown): Promise<FunctionUrlResponse> {
  const [rawPath, rawQueryString = ''] = path.split('?');
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: { host: FUNCTION_URL_HOST, 'content-type': 'application/json' },
    requestContext: { domainName: FUNCTION_URL_HOST, http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '203.0.113.9', userAgent: 'test' } },
    body: body === undefined ? undefined : JSON.stringify(body),
    isBase64Encoded: false,
  };
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk, _, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  await handler(event, stream, {});
  const all = Buffer.concat(chunks);
  const split = all.indexOf(DELIMITER);
  if (split <= 0) throw new Error(`the handler streamed no metadata: ${all.subarray(0, 200).toString()}`);
  const metadata = JSON.parse(all.subarray(0, split).toString());
  return { headers: {}, ...metadata, body: all.subarray(split + DELIMITER.length).toString() };
}
