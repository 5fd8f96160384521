import type { CudaProviderOptions } from '../ort-capi/index.ts';

/**
 * The CUDA provider's options for engine v2's sessions, from the worker's environment:
 *   ANOLE_CUDA_DEVICE         device_id (default 0)
 *   ANOLE_GPU_MEM_LIMIT_MIB   gpu_mem_limit: the cap of ONNX Runtime's device arena (default: none)
 *   ANOLE_CUDA_ARENA_EXTEND   arena_extend_strategy: same-as-requested (default: each layer's cache is one
 *                             allocation, which a power-of-two arena would round up to nearly twice its size)
 *                             or power-of-two
 * CUDA graphs stay off: a captured step replays fixed addresses, and engine v2 allocates its buffers per
 * generate call until its slots outlive a call (docs/engine-v2.md).
 */
export function cudaOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): CudaProviderOptions & { device_id: number } {
  const whole = (name: string, fallback?: number): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    if (!/^\d+$/.test(v)) throw new Error(`${name} must be a whole number, got ${v}`);
    return Number(v);
  };
  const extend = env.ANOLE_CUDA_ARENA_EXTEND || 'same-as-requested';
  const strategies: Record<string, string> = { 'same-as-requested': 'kSameAsRequested', 'power-of-two': 'kNextPowerOfTwo' };
  if (!(extend in strategies)) throw new Error(`ANOLE_CUDA_ARENA_EXTEND must be same-as-requested or power-of-two, got ${extend}`);
  const limit = whole('ANOLE_GPU_MEM_LIMIT_MIB');
  return {
    device_id: whole('ANOLE_CUDA_DEVICE', 0)!,
    arena_extend_strategy: strategies[extend],
    ...(limit !== undefined ? { gpu_mem_limit: limit * 2 ** 20 } : {}),
    enable_cuda_graph: false,
  };
}
