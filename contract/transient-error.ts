/**
 * Whether an error is the infrastructure's, not the job's: S3/SQS unreachable, throttling, a 5xx.
 * A job that hits one is left on the queue to run again later; any other error fails the job
 * (running it again would fail the same way).
 */
export function isTransientError(e: unknown): boolean {
  for (let err: unknown = e, depth = 0; err && depth < 5; err = (err as { cause?: unknown }).cause, depth++) {
    const x = err as { code?: string; name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
    if (x.code && NETWORK_CODES.has(x.code)) return true;
    if (x.name && TRANSIENT_NAMES.has(x.name)) return true;
    if (x.$retryable) return true;
    const status = x.$metadata?.httpStatusCode;
    if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  }
  return false;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);
const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'ThrottlingException', 'SlowDown', 'ServiceUnavailable', 'InternalError']);
