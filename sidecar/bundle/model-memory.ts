import fs from 'node:fs';
import os from 'node:os';
import type { AnoleConfig } from '../../model/config.ts';
import type { Precision } from '../graphs/precision.ts';
import { nvidiaGpus } from '../onnx/gpu-info.ts';
import { readCheckpointConfig } from '../weights/checkpoint.ts';
import { isBundle, readManifest } from './manifest.ts';
import { describeEstimate, estimateMemory, largestFittingBatch, memoryShortfalls, type AvailableMemory, type MemoryEstimate, type ServingShape } from './memory-estimate.ts';

/** The worker's default batch (JobWorker's maxBatch) when ANOLE_BATCH_SIZE is not set. */
export const DEFAULT_BATCH = 4;

/** A model directory's config and what it was built for (a Hugging Face directory runs as fp32 on the CPU). */
export function modelPrecision(dir: string): { config: AnoleConfig; precision: Precision; blockSize: number } {
  const { config } = readCheckpointConfig(dir);
  if (!config) throw new Error(`${dir}: a VQ-VAE checkpoint, not a whole Anole model`);
  // precision.ts's DEFAULT_PRECISION (a value import would load the graph builder into the worker's main thread)
  if (!isBundle(dir)) return { config, precision: { dtype: 'fp32', target: 'cpu' }, blockSize: 32 };
  const manifest = readManifest(dir);
  return { config, precision: manifest.precision, blockSize: manifest.quantization?.blockSize ?? 32 };
}

/**
 * The serving shape from the worker's environment: ANOLE_BATCH_SIZE (default 4) and ANOLE_MAX_CONTEXT (the
 * cache slots' length; default the model's max_position_embeddings). The KV cache this shape needs is
 * what engine v2 allocates when ANOLE_KV_CACHE_MIB is not set (sidecar/worker/main.ts).
 */
export function servingShapeFromEnv(env: NodeJS.ProcessEnv = process.env): ServingShape {
  const int = (name: string) => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
    return n;
  };
  const context = int('ANOLE_MAX_CONTEXT');
  return { batch: int('ANOLE_BATCH_SIZE') ?? DEFAULT_BATCH, ...(context ? { context } : {}) };
}

/** This machine's memory: the host's (its cgroup limit when lower) and the first GPU's, when nvidia-smi is there. */
export function availableMemory(): AvailableMemory & { gpuName?: string } {
  let hostBytes = os.totalmem();
  try {
    const limit = fs.readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (/^\d+$/.test(limit)) hostBytes = Math.min(hostBytes, Number(limit));
  } catch {
    // no cgroup v2 limit here
  }
  const gpu = nvidiaGpus()?.[0];
  return { hostBytes, gpuBytes: gpu?.memoryBytes, gpuName: gpu?.name };
}

/**
 * Refuses a model that cannot fit this machine at the serving shape: one line naming the model, what it
 * needs and what is there (the worker calls it before loading; a CUDA target's GPU is checked when
 * nvidia-smi can say how much memory the GPU has).
 */
export function assertModelFits(dir: string, shape: ServingShape, available: AvailableMemory = availableMemory()): MemoryEstimate {
  const { config, precision, blockSize } = modelPrecision(dir);
  const estimate = estimateMemory(config, precision, shape, blockSize);
  const short = memoryShortfalls(estimate, available);
  if (short.length) {
    const fits = largestFittingBatch(config, precision, available, blockSize);
    const advice = fits > 0 ? `set ANOLE_BATCH_SIZE to ${fits} or less, or use a smaller bundle` : 'it does not fit even at batch 1: use a smaller bundle or a bigger machine';
    throw new Error(`${dir} (${precision.dtype} for ${precision.target}) does not fit this machine at batch ${shape.batch}: it ${short.join(' and ')}; estimate: ${describeEstimate(estimate)}; ${advice}`);
  }
  return estimate;
}
