import { Allocator } from './allocator.ts';
import { elementTypeOfId, type ElementType } from './element-type.ts';
import { sharedEnv, type Env } from './env.ts';
import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import { SessionOptions, type SessionOptionsConfig } from './session-options.ts';
import { call, callOut } from './status.ts';

/** A graph input's or output's declared tensor type; a symbolic or unknown dim is -1. */
export interface TensorInfo {
  /** undefined for element types this binding does not name (its id is in elementTypeId). */
  elementType: ElementType | undefined;
  elementTypeId: number;
  dims: number[];
}

/**
 * An OrtSession made from model bytes (CreateSessionFromArray): our graphs are built in memory.
 * IoBindings and allocators made from it count as its dependants: release() refuses while any lives,
 * because ORT's binding and allocators point into the session. Releasing a session releases only it
 * (not the env, not the options passed in).
 */
export class Session extends Handle {
  readonly inputNames: string[];
  readonly outputNames: string[];
  readonly #dependants = new Set<object>();

  /** `options` may be SessionOptions (kept by the caller) or a config (options made and released here). */
  static fromBytes(bytes: Uint8Array, options: SessionOptions | SessionOptionsConfig = {}, env: Env = sharedEnv()): Session {
    const made = options instanceof SessionOptions ? undefined : SessionOptions.create(options);
    try {
      const opts = made ?? (options as SessionOptions);
      return new Session(callOut('CreateSessionFromArray', env.pointer, bytes, bytes.byteLength, opts.pointer));
    } finally {
      made?.release();
    }
  }

  private constructor(pointer: bigint) {
    super(pointer, 'Session');
    const allocator = Allocator.default();
    const names = (count: 'SessionGetInputCount' | 'SessionGetOutputCount', name: 'SessionGetInputName' | 'SessionGetOutputName') => {
      const n = Number(callOut<number | bigint>(count, pointer));
      return Array.from({ length: n }, (_, i) => allocator.takeString(callOut(name, pointer, i, allocator.pointer)));
    };
    try {
      this.inputNames = names('SessionGetInputCount', 'SessionGetInputName');
      this.outputNames = names('SessionGetOutputCount', 'SessionGetOutputName');
    } catch (e) {
      this.release();
      throw e;
    }
  }

  inputInfo(name: string): TensorInfo {
    return this.tensorInfo('SessionGetInputTypeInfo', this.indexOf(this.inputNames, name, 'input'));
  }

  outputInfo(name: string): TensorInfo {
    return this.tensorInfo('SessionGetOutputTypeInfo', this.indexOf(this.outputNames, name, 'output'));
  }

  /** Stops profiling (EnableProfiling in the options) and returns the trace file's path. */
  endProfiling(): string {
    const allocator = Allocator.default();
    return allocator.takeString(callOut('SessionEndProfiling', this.pointer, allocator.pointer));
  }

  /** For IoBinding and Allocator: they must be released before this session. */
  addDependant(what: object): void {
    this.#dependants.add(what);
  }

  removeDependant(what: object): void {
    this.#dependants.delete(what);
  }

  protected beforeRelease(): void {
    if (this.#dependants.size > 0) {
      const kinds = [...this.#dependants].map((d) => d.constructor.name).join(', ');
      throw new Error(`Session.release: still in use by ${kinds}; release those first`);
    }
  }

  protected destroy(pointer: bigint): void {
    ortLibrary().fn.ReleaseSession(pointer);
  }

  private indexOf(names: string[], name: string, what: string): number {
    const i = names.indexOf(name);
    if (i < 0) throw new Error(`Session: no ${what} named "${name}" (${what}s: ${names.join(', ')})`);
    return i;
  }

  private tensorInfo(which: 'SessionGetInputTypeInfo' | 'SessionGetOutputTypeInfo', index: number): TensorInfo {
    const { fn } = ortLibrary();
    const typeInfo = callOut(which, this.pointer, index);
    try {
      // The tensor info belongs to the type info: not released on its own.
      const info = callOut<bigint | null>('CastTypeInfoToTensorInfo', typeInfo);
      if (!info) throw new Error(`${which}: ${index} is not a tensor`);
      return readTensorInfo(info);
    } finally {
      fn.ReleaseTypeInfo(typeInfo);
    }
  }
}

/** Element type and dims of an OrtTensorTypeAndShapeInfo. */
export function readTensorInfo(info: bigint): TensorInfo {
  const elementTypeId = callOut<number>('GetTensorElementType', info);
  const rank = Number(callOut<number | bigint>('GetDimensionsCount', info));
  const dims = new BigInt64Array(rank);
  call('GetDimensions', info, dims, rank);
  return { elementType: elementTypeOfId(elementTypeId), elementTypeId, dims: Array.from(dims, Number) };
}
