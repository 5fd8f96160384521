import { Allocator } from './allocator.ts';
import { sharedEnv } from './env.ts';
import { ortLibrary } from './library.ts';
import { call, callOut } from './status.ts';

/**
 * CUDA provider options by ORT's string keys: device_id, gpu_mem_limit, arena_extend_strategy
 * ("kNextPowerOfTwo" | "kSameAsRequested"), enable_cuda_graph, cudnn_conv_algo_search
 * ("EXHAUSTIVE" | "HEURISTIC" | "DEFAULT"), do_copy_in_default_stream, ... Numbers and booleans are
 * written as ORT parses them ("1"/"0" for booleans).
 */
export type CudaProviderOptions = Record<string, string | number | boolean>;

/**
 * Appends the CUDA execution provider to session options (CreateCUDAProviderOptions,
 * UpdateCUDAProviderOptions, SessionOptionsAppendExecutionProvider_CUDA_V2) and returns the provider's
 * effective options as ORT prints them (GetCUDAProviderOptionsAsString), for a startup log line. The
 * provider options are released before returning: ORT copied them into the session options.
 * Without the CUDA provider libraries the first call that needs them fails (an OrtCallError naming it).
 */
export function appendCudaProvider(sessionOptions: bigint, options: CudaProviderOptions = {}): string {
  return withCudaOptions(options, (cuda) => {
    call('SessionOptionsAppendExecutionProvider_CUDA_V2', sessionOptions, cuda);
    return effectiveOptions(cuda);
  });
}

/** The effective CUDA provider options for `options`, as ORT prints them, without appending anything. */
export function cudaProviderOptionsString(options: CudaProviderOptions = {}): string {
  return withCudaOptions(options, effectiveOptions);
}

function withCudaOptions<T>(options: CudaProviderOptions, use: (cuda: bigint) => T): T {
  sharedEnv(); // the provider library logs through the env's default logger: without an env ORT refuses
  const cuda = callOut('CreateCUDAProviderOptions');
  try {
    const keys = Object.keys(options);
    if (keys.length > 0) {
      const values = keys.map((k) => cudaOptionValue(options[k]));
      call('UpdateCUDAProviderOptions', cuda, keys, values, keys.length);
    }
    return use(cuda);
  } finally {
    ortLibrary().fn.ReleaseCUDAProviderOptions(cuda);
  }
}

function effectiveOptions(cuda: bigint): string {
  const allocator = Allocator.default();
  return allocator.takeString(callOut('GetCUDAProviderOptionsAsString', cuda, allocator.pointer));
}

function cudaOptionValue(v: string | number | boolean): string {
  return typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
}
