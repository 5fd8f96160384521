import { DataType, type GraphBuilder } from '../onnx/graph-builder.ts';
import { floatConstant, maskLowest, toActivation } from './precision.ts';

/**
 * The building blocks of one Anole decoder forward (docs/model.md §2), each emitted into any
 * GraphBuilder (a root graph or a Loop body). Values are in the root graph's `floatType` (float32
 * unless a GPU build asks for fp16 / bf16; positions and RoPE angles are float32 first); shapes are in the comments with
 * B batch, T new tokens, P cached tokens, S = P + T, H query heads, Hkv key/value heads, D head_dim.
 */

/** float32's lowest value: HF's `finfo(float32).min`. -inf would turn a fully masked (pad) row into NaN. */
export const FLOAT32_LOWEST = -3.4028234663852886e38;

/** The q/k LayerNorm eps is hard-coded in HF's AnoleLayerNorm; it ignores rms_norm_eps. */
export const QK_NORM_EPS = 1e-5;

const derivedValues = new WeakMap<GraphBuilder, Map<string, string>>();

/**
 * A value computed from weights alone (a transposed or sliced matrix), emitted once into the root
 * graph: ONNX Runtime folds it at load, and a Loop body reads it from the outer scope instead of
 * recomputing it every iteration. `key` identifies the value among the graph's derived values.
 */
export function weightDerived(g: GraphBuilder, key: string, emit: (root: GraphBuilder) => string): string {
  const root = g.root();
  if (!derivedValues.has(root)) derivedValues.set(root, new Map());
  const known = derivedValues.get(root)!;
  if (!known.has(key)) known.set(key, emit(root));
  return known.get(key)!;
}

/**
 * y = x·Wᵀ + b for a HF Linear weight W [out, in] as stored: Gemm with transB on x flattened to
 * 2-D. MLAS prepacks a constant Gemm B in either layout, so the session never folds a Transpose
 * of every matrix at load; com.microsoft.FusedMatMul with transB is not prepacked (figures:
 * docs/benchmarks.md, "Linear layers as Gemm on the stored weight").
 * `shape` is x's dims but the last, then -1: a caller that projects many tensors of one shape
 * (a decoder forward) computes it once instead of once per matrix. x: [..., in] → [..., out]
 */
export function linear(g: GraphBuilder, x: string, weight: string, opts: { bias?: string; shape?: string; output?: string } = {}): string {
  const flat = g.op('Flatten', [x], { axis: -1 }); // [N, in]
  const y = g.op('Gemm', opts.bias ? [flat, weight, opts.bias] : [flat, weight], { transB: 1 }); // [N, out]
  const shape = opts.shape ?? g.op('Concat', [g.op('Slice', [g.op('Shape', [x]), g.int64s([0]), g.int64s([-1])]), g.int64s([-1])], { axis: 0 });
  return g.op('Reshape', [y, shape], {}, { output: opts.output });
}

/** HF RMSNorm: x · rsqrt(mean(x², last axis) + eps) · weight, statistics in float32 (opset 23's default stash_type). */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op('RMSNormalization', [x, weight], { axis: -1, epsilon: { float: eps } });
}

/**
 * How a checkpoint stores the q/k LayerNorm affine:
 * - 'per-head': HF main, weight/bias [heads, D] applied per head after a LayerNorm without affine;
 * - 'shared': GAIR's fork, one nn.LayerNorm(D) for every head, and q/k projections kept in Meta's
 *   interleaved-pair order, so the fork permutes q/k at run time before rotate-half RoPE.
 */
export type QKNormLayout = 'per-head' | 'shared';

/**
 * Chameleon's q/k LayerNorm over head_dim only, then (fork layout) the runtime permutation
 * `view(-1, heads, D/2, 2).transpose(3, 2)`: new[a·D/2 + i] = old[2i + a], i.e. the even
 * dimensions then the odd ones, which turns Meta's interleaved pairs into rotate-half halves.
 * x: [B, T, heads, D] → [B, T, heads, D]
 */
export function qkLayerNorm(g: GraphBuilder, x: string, weight: string, bias: string, layout: QKNormLayout, headDim: number): string {
  const eps = { float: QK_NORM_EPS };
  if (layout === 'per-head') {
    const ones = floatConstant(g, 'qk_norm_ones', [headDim], new Float32Array(headDim).fill(1));
    const zeros = floatConstant(g, 'qk_norm_zeros', [headDim], new Float32Array(headDim));
    const normed = g.op('LayerNormalization', [x, ones, zeros], { axis: -1, epsilon: eps });
    return g.op('Add', [g.op('Mul', [normed, weight]), bias]); // weight, bias: [heads, D]
  }
  const normed = g.op('LayerNormalization', [x, weight, bias], { axis: -1, epsilon: eps });
  const evensThenOdds = [...Array.from({ length: headDim / 2 }, (_, i) => 2 * i), ...Array.from({ length: headDim / 2 }, (_, i) => 2 * i + 1)];
  return g.op('Gather', [normed, g.int64s(evensThenOdds, 'rope_pair_permutation')], { axis: -1 });
}

/**
 * HF's rotary inverse frequencies, rounded like torch: 1 / theta^(2i/D) with the exponent, the
 * power and the quotient each in float32.
 */
export function rotaryInverseFrequencies(headDim: number, theta: number): Float32Array {
  return Float32Array.from({ length: headDim / 2 }, (_, i) => Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim))));
}

/**
 * cos/sin of rotate-half RoPE for every (row, position), in float32 as HF computes them
 * (autocast off): freqs = position/scale · inv_freq, emb = [freqs, freqs].
 * `positionScale` is rope_scaling linear's factor (1 without scaling): HF divides the positions.
 * positionIds: int64 [B, T] → cos, sin: [B, T, 1, D] (broadcast over heads)
 */
export function rotaryTables(g: GraphBuilder, positionIds: string, invFreq: Float32Array, positionScale: number): { cos: string; sin: string } {
  let positions = g.op('Cast', [positionIds], { to: DataType.FLOAT }); // [B, T]
  if (positionScale !== 1) positions = g.op('Div', [positions, g.float(positionScale, 'rope_linear_factor')]);
  const column = g.op('Unsqueeze', [positions, g.int64s([-1])]); // [B, T, 1]
  const freqs = g.op('Mul', [column, g.floats('rope_inv_freq', [invFreq.length], invFreq)]); // [B, T, D/2]
  const emb = g.op('Unsqueeze', [g.op('Concat', [freqs, freqs], { axis: -1 }), g.int64s([2])]); // [B, T, 1, D]
  // HF takes cos/sin in float32 and casts them to the activations' dtype
  return { cos: toActivation(g, g.op('Cos', [emb])), sin: toActivation(g, g.op('Sin', [emb])) };
}

/** x·cos + rotate_half(x)·sin with rotate_half(x) = [-x2, x1]. x: [B, T, heads, D] → same */
export function applyRotary(g: GraphBuilder, x: string, cos: string, sin: string): string {
  const [x1, x2] = g.node('Split', [x], { axis: -1, num_outputs: 2 }, { outputs: 2 });
  const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: -1 });
  return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotated, sin])]);
}

/**
 * HF's 4-D additive mask: 0 where a query may see a key (key index ≤ the query's cache position
 * P + t, and the key is not padding), the activation type's lowest elsewhere (maskLowest). Built once per forward and shared
 * by every layer. A pad query sees nothing; its row stays finite (never NaN) and is unused.
 * attentionMask: int64 [B, S], inputIds: [B, T] → bias: [B, 1, T, S]
 */
export function attentionBias(g: GraphBuilder, attentionMask: string, inputIds: string): string {
  const total = g.op('Squeeze', [g.op('Shape', [attentionMask], { start: 1, end: 2 })]); // S
  const fresh = g.op('Squeeze', [g.op('Shape', [inputIds], { start: 1, end: 2 })]); // T
  const past = g.op('Sub', [total, fresh]); // P
  const one = g.int64(1);
  const keyIndex = g.op('Unsqueeze', [g.op('Range', [g.int64(0), total, one]), g.int64s([0])]); // [1, S]
  const queryPosition = g.op('Unsqueeze', [g.op('Range', [past, total, one]), g.int64s([1])]); // [T, 1]
  const causal = g.op('LessOrEqual', [keyIndex, queryPosition]); // [T, S]
  const notPad = g.op('Unsqueeze', [g.op('Cast', [attentionMask], { to: DataType.BOOL }), g.int64s([1, 2])]); // [B, 1, 1, S]
  const visible = g.op('And', [causal, notPad]); // [B, 1, T, S]
  const type = g.root().floatType;
  const closed = type === DataType.FLOAT ? g.float(FLOAT32_LOWEST, 'mask_closed') : floatConstant(g, 'mask_closed', [], [maskLowest(type)]);
  const open = type === DataType.FLOAT ? g.float(0, 'mask_open') : floatConstant(g, 'mask_open', [], [0]);
  return g.op('Where', [visible, open, closed]);
}

/**
 * softmax(q·Kᵀ·scale + bias)·V with the cache appended inside ONNX Attention (opset 23), which
 * also repeats each key/value head for H/Hkv query heads as HF's repeat_kv does.
 * q: [B, H, T, D], k, v: [B, Hkv, T, D], past: [B, Hkv, P, D]
 * → y: [B, H, T, D], present: [B, Hkv, S, D] (named `presentNames` when given, e.g. graph outputs)
 */
export function attention(
  g: GraphBuilder,
  qkv: { q: string; k: string; v: string },
  bias: string,
  past: { key: string; value: string },
  scale: number,
  presentNames?: { key: string; value: string },
): { y: string; presentKey: string; presentValue: string } {
  const outputs = presentNames ? [g.fresh('attention_y'), presentNames.key, presentNames.value] : 3;
  const [y, presentKey, presentValue] = g.node('Attention', [qkv.q, qkv.k, qkv.v, bias, past.key, past.value], { scale: { float: scale } }, { outputs });
  return { y, presentKey, presentValue };
}

/** SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)), each projection with its bias. x: [B, T, C] → [B, T, C] */
export function swigluMlp(g: GraphBuilder, x: string, p: { gate: (x: string) => string; up: (x: string) => string; down: (x: string) => string }): string {
  const gate = p.gate(x); // [B, T, I]
  const up = p.up(x); // [B, T, I]
  const silu = g.op('Mul', [gate, g.op('Sigmoid', [gate])]);
  return p.down(g.op('Mul', [silu, up]));
}
