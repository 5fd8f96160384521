import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import { callOut } from './status.ts';

export type LogLevel = 'verbose' | 'info' | 'warning' | 'error' | 'fatal';
const LOG_LEVELS: Record<LogLevel, number> = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 };

/**
 * ONNX Runtime's environment. ORT keeps one per process and CreateEnv hands out a reference to it
 * (counted; ReleaseEnv drops ours): when onnxruntime-node's JS API made it first, its log level stays.
 */
export class Env extends Handle {
  static create(opts: { logLevel?: LogLevel; logId?: string } = {}): Env {
    return new Env(callOut('CreateEnv', LOG_LEVELS[opts.logLevel ?? 'warning'], opts.logId ?? 'ort-capi'));
  }

  private constructor(pointer: bigint) {
    super(pointer, 'Env');
  }

  protected destroy(pointer: bigint): void {
    ortLibrary().fn.ReleaseEnv(pointer);
  }
}

let shared: Env | undefined;

/** The binding's reference to the process's env, made on first use and kept for the process's life. */
export function sharedEnv(): Env {
  if (!shared || shared.released) shared = Env.create();
  return shared;
}
