import koffi from 'koffi';
import { Allocator } from './allocator.ts';
import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import type { MemoryInfo } from './memory.ts';
import type { RunOptions } from './run-options.ts';
import type { Session } from './session.ts';
import { call, callOut, check } from './status.ts';
import { Value } from './value.ts';

/**
 * An OrtIoBinding: inputs and outputs bound once to values (or outputs to a device for ORT to allocate),
 * then run() as often as wanted; values over JS memory are read and written in place. The binding keeps
 * every bound Value referenced until it is cleared or released, so JS memory under a bound value stays
 * alive even if the Value object itself is released (ORT holds its own reference to the tensor).
 */
export class IoBinding extends Handle {
  readonly #inputs = new Map<string, Value>();
  readonly #outputs = new Map<string, Value | MemoryInfo>();

  constructor(private readonly session: Session) {
    super(callOut('CreateIoBinding', session.pointer), 'IoBinding');
    session.addDependant(this);
  }

  bindInput(name: string, value: Value): this {
    try {
      call('BindInput', this.pointer, name, value.pointer);
    } catch (e) {
      this.rebindInputs();
      throw e;
    }
    this.#inputs.set(name, value);
    return this;
  }

  bindOutput(name: string, value: Value): this {
    this.checkOutputName('bindOutput', name);
    call('BindOutput', this.pointer, name, value.pointer);
    this.#outputs.set(name, value);
    return this;
  }

  /** ORT allocates the output on `memory`'s device at each run; read it with outputValues(). */
  bindOutputToDevice(name: string, memory: MemoryInfo): this {
    this.checkOutputName('bindOutputToDevice', name);
    call('BindOutputToDevice', this.pointer, name, memory.pointer);
    this.#outputs.set(name, memory);
    return this;
  }

  clearInputs(): void {
    ortLibrary().fn.ClearBoundInputs(this.pointer);
    this.#inputs.clear();
  }

  clearOutputs(): void {
    ortLibrary().fn.ClearBoundOutputs(this.pointer);
    this.#outputs.clear();
  }

  /** What is bound, by name: the values (or, for outputs bound to a device, its memory info). */
  bound(): { inputs: ReadonlyMap<string, Value>; outputs: ReadonlyMap<string, Value | MemoryInfo> } {
    return { inputs: this.#inputs, outputs: this.#outputs };
  }

  /** RunWithBinding. */
  run(options?: RunOptions): void {
    call('RunWithBinding', this.session.pointer, options ? options.pointer : null, this.pointer);
  }

  /** Waits for bound inputs copied to a device (no-op on CPU). */
  synchronizeInputs(): void {
    call('SynchronizeBoundInputs', this.pointer);
  }

  /** Waits for the device to finish writing the outputs (no-op on CPU). */
  synchronizeOutputs(): void {
    call('SynchronizeBoundOutputs', this.pointer);
  }

  /**
   * The output values after a run, in binding order (GetBoundOutputValues): new OrtValue references,
   * owned by the caller (release each). For outputs bound to a Value they share its memory.
   */
  outputValues(): Value[] {
    const allocator = Allocator.default();
    const out: unknown[] = [null];
    const count: unknown[] = [0];
    check('GetBoundOutputValues', ortLibrary().fn.GetBoundOutputValues(this.pointer, allocator.pointer, out, count) as bigint | null);
    const n = Number(count[0]);
    const array = out[0] as bigint | null;
    if (n === 0 || !array) return [];
    const pointers = koffi.decode(array, 'void *', n) as bigint[];
    allocator.free(array);
    const values: Value[] = [];
    try {
      for (const p of pointers) values.push(Value.adopt(p));
    } catch (e) {
      for (const v of values) v.release();
      for (const p of pointers.slice(values.length + 1)) ortLibrary().fn.ReleaseValue(p);
      throw e;
    }
    return values;
  }

  /** A failed bind leaves ORT's name tables inconsistent (an unknown name stays half-registered): start over. */
  private rebindInputs(): void {
    ortLibrary().fn.ClearBoundInputs(this.pointer);
    for (const [name, value] of this.#inputs) call('BindInput', this.pointer, name, value.pointer);
  }

  /** ORT accepts any output name at bind time and fails only at the run: say it at once. */
  private checkOutputName(method: string, name: string): void {
    if (!this.session.outputNames.includes(name)) {
      throw new Error(`IoBinding.${method}: the session has no output "${name}" (outputs: ${this.session.outputNames.join(', ')})`);
    }
  }

  protected destroy(pointer: bigint): void {
    ortLibrary().fn.ReleaseIoBinding(pointer);
    this.#inputs.clear();
    this.#outputs.clear();
    this.session.removeDependant(this);
  }
}
