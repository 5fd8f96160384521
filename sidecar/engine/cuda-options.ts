import type { CudaProviderOptions } from '../ort-capi/index.ts';

/**
 * The CUDA provider's options for engine v2's sessions, from the worker's environment:
 *   ANOLE_CUDA_DEVICE         device_id (default 0)
 *   ANOLE_GPU_MEM_LIMIT_MIB   gpu_mem_limit: the cap of ONNX Runtime's device arena (default: none)
 *   ANOLE_CUDA_ARENA_EXTEND   arena_extend_strategy: same-as-requested (default: each layer's cache is one
 *                             allocation, which a power-of-two arena would round up to nearly twice its size)
 *                             or power-of-two
 *   ANOLE_CUDA_GRAPH          1: enable_cuda_graph for the step and head sessions (default off; unmeasured,
 *                             no GPU here). Each batch size's bindings replay a graph of their own
 *                             (gpu_graph_id, slot-batch.ts); prefills are not captured (docs/engine-v2.md).
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
  const graph = env.ANOLE_CUDA_GRAPH || '0';
  if (graph !== '0' && graph !== '1') throw new Error(`ANOLE_CUDA_GRAPH must be 0 or 1, got ${graph}`);
  return {
    device_id: whole('ANOLE_CUDA_DEVICE', 0)!,
    arena_extend_strategy: strategies[extend],
    ...(limit !== undefined ? { gpu_mem_limit: limit * 2 ** 20 } : {}),
    enable_cuda_graph: graph === '1',
  };
}
