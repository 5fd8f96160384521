import { appendCudaProvider, type CudaProviderOptions } from './cuda-provider.ts';
import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import { call, callOut } from './status.ts';

export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';
const OPTIMIZATION_LEVELS: Record<GraphOptimization, number> = { disabled: 0, basic: 1, extended: 2, all: 99 };

export interface SessionOptionsConfig {
  /** Threads inside one operator (default: ORT's choice, all cores). */
  intraOpThreads?: number;
  /** Threads across operators (only used by the parallel mode; default 1 here). */
  interOpThreads?: number;
  /** Default 'all'. */
  graphOptimization?: GraphOptimization;
  /** Default true: ORT_SEQUENTIAL; false: ORT_PARALLEL (branches on the inter-op threads). */
  sequential?: boolean;
  /**
   * The directory a graph's external weights are read from: our graphs travel as bytes, so their
   * relative `location`s need it (session.model_external_initializers_file_folder_path).
   */
  externalDataDir?: string;
  /** Any other session config entries, e.g. { 'session.disable_cpu_ep_fallback': '1' }. */
  config?: Record<string, string>;
  /** Writes a Chrome trace to `<prefix>_<date>.json`; Session.endProfiling() returns its path. */
  profilePrefix?: string;
  /** Appends the CUDA provider first (the CPU provider stays as the fallback unless disabled). */
  cuda?: CudaProviderOptions;
}

/** OrtSessionOptions. */
export class SessionOptions extends Handle {
  /** CUDA's effective options when appendCuda() was called (GetCUDAProviderOptionsAsString). */
  cudaOptions: string | undefined;

  static create(config: SessionOptionsConfig = {}): SessionOptions {
    const options = new SessionOptions(callOut('CreateSessionOptions'));
    try {
      options.setGraphOptimization(config.graphOptimization ?? 'all');
      call('SetSessionExecutionMode', options.pointer, (config.sequential ?? true) ? 0 : 1);
      options.setInterOpThreads(config.interOpThreads ?? 1);
      if (config.intraOpThreads) options.setIntraOpThreads(config.intraOpThreads);
      if (config.externalDataDir) options.addConfigEntry('session.model_external_initializers_file_folder_path', config.externalDataDir);
      for (const [key, value] of Object.entries(config.config ?? {})) options.addConfigEntry(key, value);
      if (config.profilePrefix) call('EnableProfiling', options.pointer, config.profilePrefix);
      if (config.cuda) options.appendCuda(config.cuda);
      return options;
    } catch (e) {
      options.release();
      throw e;
    }
  }

  private constructor(pointer: bigint) {
    super(pointer, 'SessionOptions');
  }

  setIntraOpThreads(n: number): this {
    call('SetIntraOpNumThreads', this.pointer, n);
    return this;
  }

  setInterOpThreads(n: number): this {
    call('SetInterOpNumThreads', this.pointer, n);
    return this;
  }

  setGraphOptimization(level: GraphOptimization): this {
    call('SetSessionGraphOptimizationLevel', this.pointer, OPTIMIZATION_LEVELS[level]);
    return this;
  }

  addConfigEntry(key: string, value: string): this {
    call('AddSessionConfigEntry', this.pointer, key, value);
    return this;
  }

  /** Appends the CUDA provider; returns and remembers its effective options. */
  appendCuda(options: CudaProviderOptions = {}): string {
    this.cudaOptions = appendCudaProvider(this.pointer, options);
    return this.cudaOptions;
  }

  protected destroy(pointer: bigint): void {
    ortLibrary().fn.ReleaseSessionOptions(pointer);
  }
}
