import type { Precision } from '../../sidecar/graphs/precision.ts';
import { describeEstimate, estimateMemory, gib, largestFittingBatch, memoryShortfalls } from '../../sidecar/bundle/memory-estimate.ts';
import { availableMemory } from '../../sidecar/bundle/model-memory.ts';
import { readCheckpointConfig } from '../../sidecar/weights/checkpoint.ts';

/** A 24 GB GPU as nvidia-smi reports it (L4: 23034 MiB, A10G: 23028 MiB): the smallest GPU the README targets. */
export const DEFAULT_GPU_GIB = 22.5;

/**
 * `convert`'s memory check, before the long part: the bundle's estimate at batch 1 (weights, KV cache at the
 * full context, activations) against the machine it is for (--gpu-memory / --host-memory, default this one's,
 * or a 24 GB GPU when this machine has none). It refuses a bundle that cannot run there at all, and says on
 * stderr the largest ANOLE_BATCH_SIZE that fits.
 */
export function checkConvertFits(from: string, precision: Precision, opts: { blockSize?: number; gpuMemory?: number; hostMemory?: number }): void {
  const { config } = readCheckpointConfig(from);
  if (!config) throw new Error(`${from}: a VQ-VAE checkpoint, not a whole Anole model`);
  const here = availableMemory();
  const available = {
    hostBytes: opts.hostMemory !== undefined ? opts.hostMemory * 2 ** 30 : here.hostBytes,
    gpuBytes: precision.target !== 'cuda' ? undefined : (opts.gpuMemory ?? (here.gpuBytes !== undefined ? here.gpuBytes / 2 ** 30 : DEFAULT_GPU_GIB)) * 2 ** 30,
  };
  const machine = `${available.gpuBytes !== undefined ? `a ${gib(available.gpuBytes)} GPU and ` : ''}${gib(available.hostBytes)} of host memory`;
  const one = estimateMemory(config, precision, { batch: 1 }, opts.blockSize);
  const short = memoryShortfalls(one, available);
  if (short.length) {
    throw new Error(`a ${precision.dtype} bundle for ${precision.target} cannot run on ${machine} even at batch 1: it ${short.join(' and ')} (${describeEstimate(one)}); pick a smaller --dtype, or give the target machine's --gpu-memory / --host-memory in GiB`);
  }
  const batch = largestFittingBatch(config, precision, available, opts.blockSize);
  process.stderr.write(`memory: ${describeEstimate(one)} at batch 1; on ${machine} it fits ANOLE_BATCH_SIZE up to ${batch}${batch === 64 ? ' or more' : ''}\n`);
}
