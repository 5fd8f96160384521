import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import { call, callOut } from './status.ts';

/** OrtRunOptions with config entries, e.g. { gpu_graph_id: '1' } to pick a captured CUDA graph. */
export class RunOptions extends Handle {
  static create(config: Record<string, string> = {}): RunOptions {
    const options = new RunOptions(callOut('CreateRunOptions'));
    try {
      for (const [key, value] of Object.entries(config)) options.addConfigEntry(key, value);
      return options;
    } catch (e) {
      options.release();
      throw e;
    }
  }

  /** The entries added, as given (the C API has no getter before API 17; tests read them here). */
  readonly config: Record<string, string> = {};

  private constructor(pointer: bigint) {
    super(pointer, 'RunOptions');
  }

  addConfigEntry(key: string, value: string): this {
    call('AddRunConfigEntry', this.pointer, key, value);
    this.config[key] = value;
    return this;
  }

  protected destroy(pointer: bigint): void {
    ortLibrary().fn.ReleaseRunOptions(pointer);
  }
}
