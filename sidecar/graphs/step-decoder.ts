import { DataType, GraphBuilder, type BuiltModel, type DataTypeId } from '../onnx/graph-builder.ts';
import { isQuantized, isTransposed, type Matrix } from '../weights/quantized-tensors.ts';
import { readTensorAsFloat32, type TensorEntry } from '../weights/safetensors.ts';
import { cacheNames, type DecoderWeights } from './decoder.ts';
import { applyRotary, QK_NORM_EPS, rotaryInverseFrequencies, weightDerived } from './decoder-layers.ts';
import { floatConstant } from './precision.ts';
import { quantizedLinear } from './quantized-linear.ts';

/**
 * The decoder as engine v2 runs it (docs/engine-v2.md): one forward of T new tokens per row, each
 * row's KV cache updated IN PLACE in a preallocated buffer [R, Hkv, max_context, D] that the
 * caller binds as both past and present (com.microsoft GroupQueryAttention shares the buffer when
 * both are the same memory). Rows of different lengths share a batch without padding: `seqlens_k`
 * says where each row's new keys go (its length after this call, minus one).
 *
 * The same graph is the prefill (R = 1, T = the prompt, bound to one row's slot of the cache) and
 * the decode step (R rows, T = 1). Fused ops, as onnxruntime-genai's builder emits them, so that a
 * layer is about 20 nodes instead of about 55 (docs/engine.md §1):
 *   SkipSimplifiedLayerNormalization  residual add + RMSNorm in one node
 *   one packed QKV matrix, one packed gate/up matrix (Gemm transB, or MatMulNBits)
 *   GroupQueryAttention               rotary inside (cos/sin tables), cache write in place
 * Chameleon's q/k LayerNorm (over head_dim, per-head affine) stays a LayerNormalization before
 * the rotary, exactly as HF computes it.
 *
 * Activations are [N, C] with N = R·T tokens: every matrix is a plain 2-D Gemm, and only the
 * attention sees [R, T, ·].
 */

export const STEP_INPUTS = {
  inputIds: 'input_ids', // int64 [R, T]
  seqlensK: 'seqlens_k', // int32 [R]: each row's length after this call, minus 1
  totalSequenceLength: 'total_sequence_length', // int32 scalar: the longest row's length after this call
} as const;

/** The last position's hidden state per row, after the final norm: what the lm-head reads. [R, 1, C] */
export const STEP_HIDDEN = 'hidden';

/**
 * GroupQueryAttention's kernels want head_size a multiple of 16 (the real model's is 128). A
 * smaller head (the tiny fixture's 8) is zero-padded to it: q·k and the weighted sum of v are
 * unchanged by zero dimensions, and the padded output columns are dropped. The rotary then runs
 * before the padding (rotate-half pairs dimension i with i + D/2 of the real head).
 */
export const cacheHeadDim = (headDim: number) => Math.ceil(headDim / 16) * 16;

export interface StepGraphOptions {
  /** Activation and cache type: float32 on CPU, fp16 / bf16 on CUDA (GroupQueryAttention has no fp32 CUDA kernel). */
  floatType?: DataTypeId;
}

export function buildStepGraph(w: DecoderWeights, opts: StepGraphOptions = {}): BuiltModel {
  const c = w.config;
  const g = new GraphBuilder('anole_step');
  const T = (g.floatType = opts.floatType ?? DataType.FLOAT);
  const inputIds = g.input(STEP_INPUTS.inputIds, DataType.INT64, ['rows', 'tokens']);
  const seqlensK = g.input(STEP_INPUTS.seqlensK, DataType.INT32, ['rows']);
  const total = g.input(STEP_INPUTS.totalSequenceLength, DataType.INT32, []);
  const cacheDims = ['rows', c.numKeyValueHeads, 'max_context', cacheHeadDim(c.headDim)];
  const past = Array.from({ length: c.numHiddenLayers }, (_, i) => ({
    key: g.input(cacheNames(i).pastKey, T, cacheDims),
    value: g.input(cacheNames(i).pastValue, T, cacheDims),
  }));

  emitStepForward(g, w, { inputIds, seqlensK, total, past, hidden: STEP_HIDDEN });
  g.output(STEP_HIDDEN, T, ['rows', 1, c.hiddenSize]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    g.output(cacheNames(i).presentKey, T, cacheDims);
    g.output(cacheNames(i).presentValue, T, cacheDims);
  }
  return g.build();
}

interface StepIO {
  inputIds: string;
  seqlensK: string;
  total: string;
  past: { key: string; value: string }[];
  /** The name to give the returned value (e.g. a graph output). */
  hidden?: string;
}

/** Embedding → layers → final norm, top to bottom; returns the last position's hidden state [R, 1, C]. */
export function emitStepForward(g: GraphBuilder, w: DecoderWeights, io: StepIO): string {
  const c = w.config;
  const tokens = g.op('Reshape', [io.inputIds, g.int64s([-1])]); // [N]
  const x = g.gatherWeightRows(w.embed, tokens); // [N, C]
  const rowsTokens = g.op('Shape', [io.inputIds]); // [R, T]
  const batchShape = g.op('Concat', [rowsTokens, g.int64s([-1])], { axis: 0 }); // [R, T, -1]
  const { cos, sin } = rotaryCaches(g, w);
  const rotaryInside = cacheHeadDim(c.headDim) === c.headDim;
  const gqa: GqaShared = { seqlensK: io.seqlensK, total: io.total, cos, sin, batchShape, rotaryInside };
  if (!rotaryInside) gqa.outside = rotaryOutside(g, io, cos, sin);

  // The residual stream and the normed input of the next sub-block travel together:
  // SkipSimplifiedLayerNormalization adds the sub-block's output to the residual and norms the sum.
  let residual = x;
  let normed = simplifiedNorm(g, x, w.layers[0].inputNorm, c.rmsNormEps);
  w.layers.forEach((l, i) => {
    if (c.swinNorm) {
      // post-norm (30B): x = x + norm(attn(x)); x = x + norm(mlp(x)), no fusion applies
      residual = g.op('Add', [residual, simplifiedNorm(g, selfAttention(g, w, i, residual, io.past[i], gqa), l.inputNorm, c.rmsNormEps)]);
      residual = g.op('Add', [residual, simplifiedNorm(g, mlp(g, w, i, residual), l.postNorm, c.rmsNormEps)]);
      return;
    }
    const attn = selfAttention(g, w, i, normed, io.past[i], gqa); // [N, C]
    [normed, residual] = skipNorm(g, attn, residual, l.postNorm, c.rmsNormEps);
    const next = i + 1 < w.layers.length ? w.layers[i + 1].inputNorm : w.finalNorm;
    [normed, residual] = skipNorm(g, mlp(g, w, i, normed), residual, next, c.rmsNormEps);
  });
  const out = c.swinNorm ? simplifiedNorm(g, residual, w.finalNorm, c.rmsNormEps) : normed; // [N, C]
  const perRow = g.op('Reshape', [out, batchShape]); // [R, T, C]
  return g.op('Slice', [perRow, g.int64s([-1]), g.int64s([2 ** 53]), g.int64s([1])], {}, { output: io.hidden }); // [R, 1, C]
}

interface GqaShared {
  seqlensK: string;
  total: string;
  cos: string; // [max_position, D/2]
  sin: string;
  batchShape: string; // [R, T, -1]
  /** Rotary inside GroupQueryAttention; else `outside` holds the tables per token. */
  rotaryInside: boolean;
  outside?: { cos: string; sin: string }; // [N, 1, D]
}

/** q/k/v in one matrix, Chameleon's q/k LayerNorm, GroupQueryAttention, o_proj. h: [N, C] → [N, C] */
function selfAttention(g: GraphBuilder, w: DecoderWeights, i: number, h: string, past: { key: string; value: string }, s: GqaShared): string {
  const l = w.layers[i];
  const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D } = w.config;
  const bias = l.qBias && l.kBias && l.vBias ? [l.qBias, l.kBias, l.vBias] : undefined;
  const qkv = packedLinear(g, `model.layers.${i}.self_attn.qkv_proj`, h, [l.q, l.k, l.v], bias); // [N, (H + 2Hkv)·D]
  const [q, k, v] = g.node('Split', [qkv, g.int64s([H * D, Hkv * D, Hkv * D])], { axis: -1 }, { outputs: 3 });
  const Dc = cacheHeadDim(D);
  const widen = Dc === D ? '' : floatConstant(g, 'head_widen', [D, Dc], Float32Array.from({ length: D * Dc }, (_, i) => Number(i % Dc === Math.floor(i / Dc))));
  // [N, heads, D] → [R, T, heads·Dc]: rotary and zero padding when the head is too small for the kernel
  const toAttention = (y: string, rotate: boolean) => {
    if (s.rotaryInside) return g.op('Reshape', [y, s.batchShape]);
    if (rotate) y = applyRotary(g, y, s.outside!.cos, s.outside!.sin);
    y = g.op('MatMul', [y, widen]); // [N, heads, Dc]: [x | 0], exact (each output is one x times 1)
    return g.op('Reshape', [y, s.batchShape]);
  };
  const query = toAttention(qkNorm(g, w, q, l.qNormWeight, l.qNormBias, H), true);
  const key = toAttention(qkNorm(g, w, k, l.kNormWeight, l.kNormBias, Hkv), true);
  const value = s.rotaryInside ? toAttention(v, false) : toAttention(g.op('Reshape', [v, g.int64s([-1, Hkv, D])]), false);
  const [y] = g.node(
    'GroupQueryAttention',
    [query, key, value, past.key, past.value, s.seqlensK, s.total, s.rotaryInside ? s.cos : '', s.rotaryInside ? s.sin : ''],
    { num_heads: H, kv_num_heads: Hkv, do_rotary: s.rotaryInside ? 1 : 0, rotary_interleaved: 0, scale: { float: D ** -0.5 } },
    { domain: 'com.microsoft', outputs: [g.fresh('attention'), cacheNames(i).presentKey, cacheNames(i).presentValue] },
  ); // [R, T, H·D]
  let flat = g.op('Reshape', [y, g.int64s([-1, H * Dc])]); // [N, H·Dc]
  if (Dc !== D) flat = g.op('Reshape', [g.op('Slice', [g.op('Reshape', [flat, g.int64s([-1, H, Dc])]), g.int64s([0]), g.int64s([D]), g.int64s([2])]), g.int64s([-1, H * D])]);
  return linearOf(g, flat, l.o, l.oBias ? g.weight(l.oBias) : undefined);
}

/**
 * Chameleon's q/k LayerNorm over head_dim (eps 1e-5, HF hard-codes it), then its affine: one
 * [D] vector for every head (GAIR's layout, followed by its even-then-odd permutation), or a
 * [heads, D] table. A table whose rows are all equal (the HF conversion of the 7B repeats one
 * vector) is the LayerNorm's own affine, which saves two nodes. x: [N, heads·D] → [N, heads, D]
 */
function qkNorm(g: GraphBuilder, w: DecoderWeights, x: string, weight: TensorEntry, bias: TensorEntry, heads: number): string {
  const D = w.config.headDim;
  const eps = { float: QK_NORM_EPS };
  const split = g.op('Reshape', [x, g.int64s([-1, heads, D])]); // [N, heads, D]
  if (w.qkNormLayout === 'shared') {
    const normed = g.op('LayerNormalization', [split, g.weight(weight), g.weight(bias)], { axis: -1, epsilon: eps });
    const evensThenOdds = [...Array.from({ length: D / 2 }, (_, i) => 2 * i), ...Array.from({ length: D / 2 }, (_, i) => 2 * i + 1)];
    return g.op('Gather', [normed, g.int64s(evensThenOdds, 'rope_pair_permutation')], { axis: -1 });
  }
  if (rowsAllEqual(weight) && rowsAllEqual(bias)) {
    const row = (t: TensorEntry) => weightDerived(g, `row0:${t.name}`, (root) => root.op('Gather', [root.weight(t), root.int64(0)], { axis: 0 })); // [D]
    return g.op('LayerNormalization', [split, row(weight), row(bias)], { axis: -1, epsilon: eps });
  }
  const ones = floatConstant(g, 'qk_norm_ones', [D], new Float32Array(D).fill(1));
  const zeros = floatConstant(g, 'qk_norm_zeros', [D], new Float32Array(D));
  const normed = g.op('LayerNormalization', [split, ones, zeros], { axis: -1, epsilon: eps });
  return g.op('Add', [g.op('Mul', [normed, g.weight(weight)]), g.weight(bias)]); // [heads, D] broadcast
}

/** True when every row of a [heads, D] tensor equals the first (read once at build time: it is small). */
function rowsAllEqual(t: TensorEntry): boolean {
  const [rows, cols] = t.shape;
  const x = readTensorAsFloat32(t);
  for (let i = cols; i < rows * cols; i++) if (x[i] !== x[i % cols]) return false;
  return true;
}

/** SwiGLU with gate and up in one matrix. h: [N, C] → [N, C] */
function mlp(g: GraphBuilder, w: DecoderWeights, i: number, h: string): string {
  const l = w.layers[i];
  const I = w.config.intermediateSize;
  const bias = l.gateBias && l.upBias ? [l.gateBias, l.upBias] : undefined;
  const gateUp = packedLinear(g, `model.layers.${i}.mlp.gate_up_proj`, h, [l.gate, l.up], bias); // [N, 2I]
  const [gate, up] = g.node('Split', [gateUp, g.int64s([I, I])], { axis: -1 }, { outputs: 2 });
  const silu = g.op('Mul', [gate, g.op('Sigmoid', [gate])]);
  return linearOf(g, g.op('Mul', [silu, up]), l.down, l.downBias ? g.weight(l.downBias) : undefined);
}

/** RMSNorm (ONNX Runtime's SimplifiedLayerNormalization, which its fusions and CUDA kernels know). x: [N, C] */
function simplifiedNorm(g: GraphBuilder, x: string, weight: TensorEntry, eps: number): string {
  return g.op('SimplifiedLayerNormalization', [x, g.weight(weight)], { axis: -1, epsilon: { float: eps } });
}

/** [norm(x + residual), x + residual] in one node. */
function skipNorm(g: GraphBuilder, x: string, residual: string, weight: TensorEntry, eps: number): [string, string] {
  const [normed, , , sum] = g.node('SkipSimplifiedLayerNormalization', [x, residual, g.weight(weight)], { epsilon: { float: eps } }, { domain: 'com.microsoft', outputs: 4 });
  return [normed, sum];
}

/** y = x·Wᵀ (+ b) for x [N, K] and one matrix in any stored form. */
function linearOf(g: GraphBuilder, x: string, m: Matrix, bias?: string): string {
  if (isQuantized(m)) return quantizedLinear(g, x, m, { bias });
  if (isTransposed(m)) {
    const y = g.op('MatMul', [x, g.weight(m.transposed)]);
    return bias ? g.op('Add', [y, bias]) : y;
  }
  return g.op('Gemm', bias ? [x, g.weight(m), bias] : [x, g.weight(m)], { transB: 1 });
}

/**
 * y = x·[W1; W2; …]ᵀ: several matrices of one input as one, concatenated once in the root graph
 * (ONNX Runtime folds it at load), so a step launches one matmul where it would launch several.
 * All matrices must be stored alike (a checkpoint or bundle stores every decoder matrix alike).
 */
function packedLinear(g: GraphBuilder, name: string, x: string, ms: Matrix[], biases?: TensorEntry[]): string {
  const bias = biases && weightDerived(g, `${name}.bias`, (root) => root.op('Concat', biases.map((b) => root.weight(b)), { axis: 0 }));
  const concat = (key: string, values: string[], axis: number) => weightDerived(g, `${name}.${key}`, (root) => root.op('Concat', values, { axis }));
  if (ms.every(isQuantized)) {
    const [first] = ms;
    if (!ms.every((m) => m.bits === first.bits && m.blockSize === first.blockSize && m.cols === first.cols)) {
      throw new Error(`${name}: the matrices to pack are quantized differently`);
    }
    const packed = concat('packed', ms.map((m) => g.weight(m.packed)), 0);
    const scales = concat('scales', ms.map((m) => g.weight(m.scales)), 0);
    const N = ms.reduce((n, m) => n + m.rows, 0);
    const attrs = { K: first.cols, N, bits: first.bits, block_size: first.blockSize, accuracy_level: first.accuracyLevel };
    const y = g.op('MatMulNBits', [x, packed, scales], attrs, { domain: 'com.microsoft' });
    return bias ? g.op('Add', [y, bias]) : y;
  }
  if (ms.every(isTransposed)) {
    const y = g.op('MatMul', [x, concat('t', ms.map((m) => g.weight(m.transposed)), 1)]);
    return bias ? g.op('Add', [y, bias]) : y;
  }
  if (ms.some((m) => isQuantized(m) || isTransposed(m))) throw new Error(`${name}: the matrices to pack are stored in different forms`);
  const weight = concat('weight', ms.map((m) => g.weight(m as TensorEntry)), 0); // [ΣN, K]
  return g.op('Gemm', bias ? [x, weight, bias] : [x, weight], { transB: 1 });
}

/**
 * cos / sin [N, 1, D] of each new token's position (its row's past length + its index), for a
 * rotary applied outside GroupQueryAttention. Tables are [max_position, D/2]; rotate-half repeats them.
 */
function rotaryOutside(g: GraphBuilder, io: StepIO, cos: string, sin: string): { cos: string; sin: string } {
  // token i of T sits at seqlens_k + 1 - (T - i); T - i is a reversed running count of the row's
  // tokens, computed on the device (a length taken from the input's shape lives on the host, and
  // adding it to device values would copy it at every run, which rules out CUDA graphs)
  const ones = g.op('Add', [g.op('Mul', [io.inputIds, g.int64(0)]), g.int64(1)]); // [R, T]
  const fromEnd = g.op('CumSum', [ones, g.int64(1)], { reverse: 1 }); // [R, T]: T - i
  const next = g.op('Add', [g.op('Cast', [io.seqlensK], { to: DataType.INT64 }), g.int64(1)]); // [R]
  const positions = g.op('Reshape', [g.op('Sub', [g.op('Unsqueeze', [next, g.int64s([1])]), fromEnd]), g.int64s([-1])]); // [N]
  const table = (half: string) => {
    const rows = g.op('Gather', [half, positions], { axis: 0 }); // [N, D/2]
    return g.op('Unsqueeze', [g.op('Concat', [rows, rows], { axis: -1 }), g.int64s([1])]); // [N, 1, D]
  };
  return { cos: table(cos), sin: table(sin) };
}

/**
 * GroupQueryAttention's rotary tables [max_position, D/2], computed here as HF computes them in
 * float32: angle = (position / linear factor) · inv_freq, each product rounded to float32.
 */
function rotaryCaches(g: GraphBuilder, w: DecoderWeights): { cos: string; sin: string } {
  const c = w.config;
  const invFreq = rotaryInverseFrequencies(c.headDim, c.ropeTheta);
  const half = invFreq.length;
  const cos = new Float32Array(c.maxPositionEmbeddings * half);
  const sin = new Float32Array(c.maxPositionEmbeddings * half);
  for (let p = 0; p < c.maxPositionEmbeddings; p++) {
    const position = w.ropeLinearFactor === 1 ? p : Math.fround(p / w.ropeLinearFactor);
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(position * invFreq[i]);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  const dims = [c.maxPositionEmbeddings, half];
  return { cos: floatConstant(g, 'rotary_cos', dims, cos), sin: floatConstant(g, 'rotary_sin', dims, sin) };
}

