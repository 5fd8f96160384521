/**
 * One C object we own. release() frees it at once and is idempotent; `using` calls it too
 * ([Symbol.dispose]). Using a released handle is an Error that names the wrapper, never a crash.
 */
export abstract class Handle {
  #pointer: bigint | null;

  constructor(
    pointer: bigint,
    private readonly kind: string,
  ) {
    this.#pointer = pointer;
  }

  /** The C pointer; an Error after release(). */
  get pointer(): bigint {
    if (this.#pointer === null) throw new Error(`${this.kind} was used after release()`);
    return this.#pointer;
  }

  get released(): boolean {
    return this.#pointer === null;
  }

  release(): void {
    if (this.#pointer === null) return;
    this.beforeRelease();
    const pointer = this.#pointer;
    this.#pointer = null;
    this.destroy(pointer);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  /** Throws to refuse a release (e.g. while dependants still use this object). */
  protected beforeRelease(): void {}

  protected abstract destroy(pointer: bigint): void;
}
