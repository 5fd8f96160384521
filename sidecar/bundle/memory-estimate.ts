import type { AnoleConfig } from '../../model/config.ts';
import type { Precision } from '../graphs/precision.ts';
import { anoleTensors } from '../weights/expected-tensors.ts';

// precision.ts's activationType and quantizedBits, restated: importing them would load the graph builder (and
// protobuf) into the worker's main thread, which checks the estimate before the engine thread starts.
const activationBytes = (p: Precision) => (p.target === 'cpu' || p.dtype === 'fp32' ? 4 : 2);
const quantizedBits = (p: Precision) => (p.dtype === 'int4' ? 4 : p.dtype === 'int8' ? 8 : undefined);

/**
 * What a model needs in memory to serve: its weights as ONNX Runtime holds them, the KV cache of every row
 * at the full context, and the activations of a prefill. Computed from the config's shapes (the checkpoint's
 * tensor list), so it works for a 7B model that is not on this machine. An estimate, written out term by
 * term (docs/gpu-memory.md), checked by `anole convert`, `anole doctor --model` and the worker at start.
 */

/** How the worker will run it: jobs at once (ANOLE_BATCH_SIZE), rows per job, tokens per row. */
export interface ServingShape {
  /** Jobs the worker takes at once (ANOLE_BATCH_SIZE; the worker's default is 4). */
  batch: number;
  /** Rows each job runs: 3 for a guided image (full, image-conditioned and unconditioned streams); n > 1 multiplies it. */
  rowsPerJob?: number;
  /** Tokens each row may reach (default: the model's max_position_embeddings, what a job may use). */
  context?: number;
  /** The longest prompt prefilled in one run (default: min(context, 1024)). */
  promptTokens?: number;
}

/** Memory of the process besides the model: node, ONNX Runtime, the tokenizer, the AWS SDK (assumed, see docs). */
export const HOST_BASE_BYTES = 1 << 30;
/** A CUDA context with cuBLAS / cuDNN workspaces and ONNX Runtime's arena slack (assumed, unmeasured: no GPU here). */
export const GPU_BASE_BYTES = 1 << 30;
/** A plan fits when it needs at most this share of what is there. */
export const FIT_SHARE = 0.9;

export interface MemoryEstimate {
  precision: Precision;
  rows: number;
  context: number;
  promptTokens: number;
  /** Weights as ONNX Runtime holds them on the device that runs the decoder (upcasts included). */
  weightsBytes: number;
  /** The KV cache: every row at the full context, one buffer the engine updates in place. */
  kvCacheBytes: number;
  /** The largest transient tensors of a prefill of promptTokens on every row, and the per-step logits. */
  activationsBytes: number;
  /** What the GPU must hold (0 on a CPU target). */
  gpuBytes: number;
  /** What the host must hold. */
  hostBytes: number;
}

/** Bytes per parameter of a decoder matrix as ONNX Runtime holds it for this precision. */
export function matrixBytesPerParam(p: Precision, blockSize = 32): number {
  const bits = quantizedBits(p);
  const floatBytes = p.target === 'cuda' ? 2 : 4; // MatMulNBits scales are in the activation type
  if (bits) return bits / 8 + floatBytes / blockSize;
  if (p.dtype === 'fp32') return 4;
  return p.target === 'cuda' ? 2 : 4; // fp16 / bf16 matrices are upcast to float32 at load on the CPU
}

/** Bytes of the weights as held at run time (see matrixBytesPerParam; the embedding stays bf16, the VQ-VAE fp32). */
export function residentWeightBytes(config: AnoleConfig, p: Precision, blockSize = 32): number {
  const perMatrix = matrixBytesPerParam(p, blockSize);
  let bytes = 0;
  for (const t of anoleTensors(config)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.part === 'vq') bytes += n * 4;
    else if (t.name === 'model.embed_tokens.weight') bytes += n * 2; // gathered by rows as stored (bf16)
    else if (t.init === 'matrix') bytes += n * perMatrix;
    else bytes += n * 4; // norms and biases
  }
  // the lm-head's image-token rows, stored once more for the image loop (write-bundle.ts)
  return bytes + config.vq.numEmbeddings * config.hiddenSize * perMatrix;
}

export function estimateMemory(config: AnoleConfig, p: Precision, shape: ServingShape, blockSize = 32): MemoryEstimate {
  const rows = shape.batch * (shape.rowsPerJob ?? 3);
  const context = shape.context ?? config.maxPositionEmbeddings;
  const promptTokens = shape.promptTokens ?? Math.min(context, 1024);
  const act = activationBytes(p);
  const { numHiddenLayers: L, numKeyValueHeads: KV, numAttentionHeads: H, headDim: D, hiddenSize: C, intermediateSize: F, vocabSize: V } = config;
  const weightsBytes = residentWeightBytes(config, p, blockSize);
  const kvCacheBytes = 2 * L * rows * context * KV * D * act;
  const activationsBytes =
    rows * H * promptTokens * promptTokens * act + // attention probabilities of one layer's prefill
    rows * promptTokens * 3 * F * act + // gate, up and their product
    rows * promptTokens * 4 * C * act + // residual, normed, attention output, projection
    rows * V * 4 * 2; // a step's float32 logits and probabilities
  const onDevice = weightsBytes + kvCacheBytes + activationsBytes;
  const base = { precision: p, rows, context, promptTokens, weightsBytes, kvCacheBytes, activationsBytes };
  if (p.target === 'cuda') return { ...base, gpuBytes: onDevice + GPU_BASE_BYTES, hostBytes: HOST_BASE_BYTES };
  return { ...base, gpuBytes: 0, hostBytes: HOST_BASE_BYTES + onDevice };
}

export interface AvailableMemory {
  /** Total memory of the GPU it will run on; undefined when unknown (no nvidia-smi). */
  gpuBytes?: number;
  hostBytes: number;
}

/** Why the estimate does not fit (each a phrase naming both figures), or [] when it fits within FIT_SHARE. */
export function memoryShortfalls(e: MemoryEstimate, available: AvailableMemory): string[] {
  const out: string[] = [];
  if (e.gpuBytes > 0 && available.gpuBytes !== undefined && e.gpuBytes > FIT_SHARE * available.gpuBytes) {
    out.push(`needs ${gib(e.gpuBytes)} of GPU memory, more than ${FIT_SHARE * 100}% of the GPU's ${gib(available.gpuBytes)}`);
  }
  if (e.hostBytes > FIT_SHARE * available.hostBytes) out.push(`needs ${gib(e.hostBytes)} of host memory, more than ${FIT_SHARE * 100}% of the host's ${gib(available.hostBytes)}`);
  return out;
}

/** The most jobs at once (ANOLE_BATCH_SIZE) that fit, 0 when not even one does (at most 64). */
export function largestFittingBatch(config: AnoleConfig, p: Precision, available: AvailableMemory, blockSize = 32): number {
  let batch = 0;
  while (batch < 64 && memoryShortfalls(estimateMemory(config, p, { batch: batch + 1 }, blockSize), available).length === 0) batch++;
  return batch;
}

/** One line: the terms and where they go. */
export function describeEstimate(e: MemoryEstimate): string {
  const where = e.precision.target === 'cuda' ? `GPU ${gib(e.gpuBytes)}, host ${gib(e.hostBytes)}` : `host ${gib(e.hostBytes)}`;
  return `${where} (weights ${gib(e.weightsBytes)} + KV cache ${gib(e.kvCacheBytes)} for ${e.rows} rows × ${e.context} tokens + activations ${gib(e.activationsBytes)} for a ${e.promptTokens}-token prefill)`;
}

export function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}
