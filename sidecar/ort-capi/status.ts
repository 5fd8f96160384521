import type { CallName } from './api-table.ts';
import { ortLibrary } from './library.ts';

/** OrtErrorCode, in the header's order. */
const ERROR_CODES = [
  'ORT_OK', 'ORT_FAIL', 'ORT_INVALID_ARGUMENT', 'ORT_NO_SUCHFILE', 'ORT_NO_MODEL', 'ORT_ENGINE_ERROR',
  'ORT_RUNTIME_EXCEPTION', 'ORT_INVALID_PROTOBUF', 'ORT_MODEL_LOADED', 'ORT_NOT_IMPLEMENTED', 'ORT_INVALID_GRAPH', 'ORT_EP_FAIL',
];

/** A failed C call: its name, ORT's error code and message. */
export class OrtCallError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly ortMessage: string,
  ) {
    super(`${call}: ${ortMessage} (${ERROR_CODES[code] ?? 'ORT error'} ${code})`);
    this.name = 'OrtCallError';
  }
}

/** Turns an OrtStatus* into an OrtCallError (releasing the status); null is success. */
export function check(call: string, status: bigint | null): void {
  if (!status) return;
  const { fn } = ortLibrary();
  const code = fn.GetErrorCode(status) as number;
  const message = fn.GetErrorMessage(status) as string;
  fn.ReleaseStatus(status);
  throw new OrtCallError(call, code, message);
}

/** Calls a status-returning C function and throws if it failed. */
export function call(name: CallName, ...args: unknown[]): void {
  check(name, ortLibrary().fn[name](...args) as bigint | null);
}

/** Calls a status-returning C function whose last parameter is an output, and returns that output. */
export function callOut<T = bigint>(name: CallName, ...args: unknown[]): T {
  const out: unknown[] = [null];
  call(name, ...args, out);
  return out[0] as T;
}
