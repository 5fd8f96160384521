import path from 'node:path';
import type { AnoleConfig } from '../../model/config.ts';
import { DataType, GraphBuilder, type BuiltModel, type DataTypeId } from '../onnx/graph-builder.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import { CheckpointError } from '../../model/checkpoint-error.ts';
import { checkpointMatrix, isQuantized, isTransposed, rowsName, type Matrix } from '../weights/quantized-tensors.ts';
import type { TensorEntry } from '../weights/safetensors.ts';
import {
  applyRotary,
  attention,
  attentionBias,
  linear,
  qkLayerNorm,
  rmsNorm,
  rotaryInverseFrequencies,
  rotaryTables,
  swigluMlp,
  weightDerived,
  type QKNormLayout,
} from './decoder-layers.ts';
import { quantizedLinear } from './quantized-linear.ts';

/**
 * The Anole text decoder (docs/model.md §2) as ONNX: embedding → layers → final RMSNorm, and a
 * separate lm-head. `emitDecoderForward` writes one forward into a GraphBuilder; `buildDecoderGraph`
 * wraps it with the genai / Optimum input and output names (the forward the tests, `anole forward`
 * and the bench's plain baseline run; the engine runs step-decoder.ts).
 *
 * Matrices are float weights or, in a quantized bundle, MatMulNBits packings (quantized-tensors.ts).
 * Activations are float32 unless a graph sets `floatType` (fp16 / bf16 for CUDA, precision.ts);
 * logits always leave the graph as float32.
 */

interface LayerWeights {
  inputNorm: TensorEntry;
  postNorm: TensorEntry;
  q: Matrix;
  k: Matrix;
  v: Matrix;
  o: Matrix;
  /** Present only with attention_bias. */
  qBias?: TensorEntry;
  kBias?: TensorEntry;
  vBias?: TensorEntry;
  oBias?: TensorEntry;
  qNormWeight: TensorEntry;
  qNormBias: TensorEntry;
  kNormWeight: TensorEntry;
  kNormBias: TensorEntry;
  gate: Matrix;
  up: Matrix;
  down: Matrix;
  /** Present only with mlp_bias. */
  gateBias?: TensorEntry;
  upBias?: TensorEntry;
  downBias?: TensorEntry;
}

/** Every decoder tensor, looked up and shape-checked against the config before any graph exists. */
export interface DecoderWeights {
  config: AnoleConfig;
  qkNormLayout: QKNormLayout;
  /** rope_scaling linear's factor, 1 without scaling. */
  ropeLinearFactor: number;
  embed: TensorEntry;
  layers: LayerWeights[];
  finalNorm: TensorEntry;
  /** lm_head.weight, or embed_tokens with tie_word_embeddings. */
  lmHead: Matrix;
  /** Row ranges of lmHead that the checkpoint (a bundle) stores on their own, by `${start}:${end}`. */
  lmHeadRows: Map<string, Matrix>;
}

export interface DecoderWeightOptions {
  /** MatMulNBits accuracy_level for quantized matrices (0: float math; 4: int8 activations on CPU). */
  accuracyLevel?: number;
}

/**
 * Resolves the decoder's tensors. A missing or wrongly shaped tensor throws the CheckpointError
 * of `ckpt.tensor`, naming the file, before ONNX Runtime sees anything.
 */
export function decoderWeights(ckpt: Checkpoint, opts: DecoderWeightOptions = {}): DecoderWeights {
  const configFile = path.join(ckpt.dir, 'config.json');
  const config = ckpt.config;
  if (!config) throw new CheckpointError(configFile, 'is a VQ-VAE checkpoint: it has no text decoder');
  const { hiddenSize: C, intermediateSize: I, numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D, vocabSize: V } = config;
  // rope_scaling: linear divides every position by the factor. dynamic (NTK) changes the base
  // only for sequences longer than max_position_embeddings (HF recomputes inv_freq when
  // max(position_ids) + 1 exceeds it), and positions never reach that here (TextModel and the
  // generator refuse them), so within the context it is exactly the unscaled rotary.
  const ropeLinearFactor = config.ropeScaling?.type === 'linear' ? config.ropeScaling.factor : 1;
  // HF main stores the q/k norm affine per head [H, D]; GAIR's fork stores one [D] (docs/model.md §2.5).
  const qkNormLayout: QKNormLayout = ckpt.tensor('model.layers.0.self_attn.q_norm.weight').shape.length === 1 ? 'shared' : 'per-head';
  const normShape = (heads: number) => (qkNormLayout === 'shared' ? [D] : [heads, D]);
  const t = (name: string, shape: number[]) => ckpt.tensor(name, shape);
  const m = (name: string, [rows, cols]: [number, number]) => checkpointMatrix(ckpt, name, rows, cols, opts.accuracyLevel);
  const optional = (flag: boolean, name: string, shape: number[]) => (flag ? t(name, shape) : undefined);

  const layers = Array.from({ length: config.numHiddenLayers }, (_, i): LayerWeights => {
    const p = `model.layers.${i}`;
    const ab = config.attentionBias;
    const mb = config.mlpBias;
    return {
      inputNorm: t(`${p}.input_layernorm.weight`, [C]),
      postNorm: t(`${p}.post_attention_layernorm.weight`, [C]),
      q: m(`${p}.self_attn.q_proj.weight`, [H * D, C]),
      k: m(`${p}.self_attn.k_proj.weight`, [Hkv * D, C]),
      v: m(`${p}.self_attn.v_proj.weight`, [Hkv * D, C]),
      o: m(`${p}.self_attn.o_proj.weight`, [C, H * D]),
      qBias: optional(ab, `${p}.self_attn.q_proj.bias`, [H * D]),
      kBias: optional(ab, `${p}.self_attn.k_proj.bias`, [Hkv * D]),
      vBias: optional(ab, `${p}.self_attn.v_proj.bias`, [Hkv * D]),
      oBias: optional(ab, `${p}.self_attn.o_proj.bias`, [C]),
      qNormWeight: t(`${p}.self_attn.q_norm.weight`, normShape(H)),
      qNormBias: t(`${p}.self_attn.q_norm.bias`, normShape(H)),
      kNormWeight: t(`${p}.self_attn.k_norm.weight`, normShape(Hkv)),
      kNormBias: t(`${p}.self_attn.k_norm.bias`, normShape(Hkv)),
      gate: m(`${p}.mlp.gate_proj.weight`, [I, C]),
      up: m(`${p}.mlp.up_proj.weight`, [I, C]),
      down: m(`${p}.mlp.down_proj.weight`, [C, I]),
      gateBias: optional(mb, `${p}.mlp.gate_proj.bias`, [I]),
      upBias: optional(mb, `${p}.mlp.up_proj.bias`, [I]),
      downBias: optional(mb, `${p}.mlp.down_proj.bias`, [C]),
    };
  });
  const embed = t('model.embed_tokens.weight', [V, C]);
  const headName = config.tieWordEmbeddings ? embed.name : 'lm_head.weight';
  return {
    config,
    qkNormLayout,
    ropeLinearFactor,
    embed,
    layers,
    finalNorm: t('model.norm.weight', [C]),
    lmHead: config.tieWordEmbeddings ? embed : m(headName, [V, C]),
    lmHeadRows: storedRowRanges(ckpt, headName, (name, rows) => m(name, [rows, C])),
  };
}

/** The row ranges of `name` stored as matrices of their own (rowsName), by `${start}:${end}`. */
function storedRowRanges(ckpt: Checkpoint, name: string, matrix: (name: string, rows: number) => Matrix): Map<string, Matrix> {
  const ranges = new Map<string, Matrix>();
  const pattern = new RegExp(`^${name.replaceAll('.', '\\.')}\\.rows_(\\d+)_(\\d+)(?:\\.t|\\.packed)?$`);
  for (const tensor of ckpt.tensors.keys()) {
    const match = pattern.exec(tensor);
    if (!match) continue;
    const [start, end] = [Number(match[1]), Number(match[2])];
    if (end > start) ranges.set(`${start}:${end}`, matrix(rowsName(name, [start, end]), end - start));
  }
  return ranges;
}

/** Value names one forward reads; presents are optional names to give the new caches (e.g. graph outputs). */
export interface DecoderIO {
  inputIds: string; // int64 [B, T]
  attentionMask: string; // int64 [B, P + T]
  positionIds: string; // int64 [B, T]
  pastKeys: string[]; // per layer [B, Hkv, P, D], activation type
  pastValues: string[];
  presentKeys?: string[];
  presentValues?: string[];
}

export interface DecoderForward {
  /** The final RMSNorm's output [B, T, C], the lm-head's input. */
  hidden: string;
  presentKeys: string[]; // per layer [B, Hkv, P + T, D]
  presentValues: string[];
}

/** One decoder forward, top to bottom, into `g`. */
export function emitDecoderForward(g: GraphBuilder, w: DecoderWeights, io: DecoderIO): DecoderForward {
  const c = w.config;
  const opt = (entry: TensorEntry | undefined) => (entry ? g.weight(entry) : undefined);

  let x = g.gatherWeightRows(w.embed, io.inputIds); // [B, T, C]
  const rows = g.op('Concat', [g.op('Shape', [io.inputIds]), g.int64s([-1])], { axis: 0 }); // [B, T, -1]: every projection's output shape
  const shared: AttentionShared = {
    rows,
    bias: attentionBias(g, io.attentionMask, io.inputIds), // [B, 1, T, P + T], the same for every layer
    ...rotaryTables(g, io.positionIds, rotaryInverseFrequencies(c.headDim, c.ropeTheta), w.ropeLinearFactor), // cos, sin [B, T, 1, D]
  };
  const presentKeys: string[] = [];
  const presentValues: string[] = [];

  w.layers.forEach((l, i) => {
    const cache = {
      past: { key: io.pastKeys[i], value: io.pastValues[i] },
      presentNames: io.presentKeys && io.presentValues ? { key: io.presentKeys[i], value: io.presentValues[i] } : undefined,
    };
    const selfAttention = (h: string) => {
      const a = emitSelfAttention(g, w, l, h, shared, cache);
      presentKeys.push(a.presentKey);
      presentValues.push(a.presentValue);
      return a.out;
    };
    const mlp = (h: string) =>
      swigluMlp(g, h, {
        gate: (x) => project(g, x, l.gate, opt(l.gateBias), rows),
        up: (x) => project(g, x, l.up, opt(l.upBias), rows),
        down: (x) => project(g, x, l.down, opt(l.downBias), rows),
      });
    const inputNorm = (h: string) => rmsNorm(g, h, g.weight(l.inputNorm), c.rmsNormEps);
    const postNorm = (h: string) => rmsNorm(g, h, g.weight(l.postNorm), c.rmsNormEps);

    if (c.swinNorm) {
      // post-norm (30B): the norms apply to the sub-block outputs
      x = g.op('Add', [x, inputNorm(selfAttention(x))]);
      x = g.op('Add', [x, postNorm(mlp(x))]);
    } else {
      x = g.op('Add', [x, selfAttention(inputNorm(x))]);
      x = g.op('Add', [x, mlp(postNorm(x))]);
    }
  });

  return { hidden: rmsNorm(g, x, g.weight(w.finalNorm), c.rmsNormEps), presentKeys, presentValues };
}

/** What every layer's attention shares within one forward. */
interface AttentionShared {
  rows: string; // [B, T, -1] int64: the shape a projection of [B, T, *] returns
  bias: string; // [B, 1, T, P + T]
  cos: string; // [B, T, 1, D]
  sin: string;
}

/**
 * One layer's self-attention: q/k/v projections, Chameleon's q/k LayerNorm per head, RoPE on q
 * and k, attention over past + new keys, o_proj. h: [B, T, C] → out: [B, T, C]
 */
function emitSelfAttention(
  g: GraphBuilder,
  w: DecoderWeights,
  l: LayerWeights,
  h: string,
  shared: AttentionShared,
  cache: { past: { key: string; value: string }; presentNames?: { key: string; value: string } },
): { out: string; presentKey: string; presentValue: string } {
  const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D } = w.config;
  const opt = (entry: TensorEntry | undefined) => (entry ? g.weight(entry) : undefined);
  const projectHeads = (weight: Matrix, bias: TensorEntry | undefined, heads: number) =>
    g.op('Reshape', [project(g, h, weight, opt(bias), shared.rows), g.int64s([0, 0, heads, D])]); // [B, T, heads, D]
  const normed = (x: string, weight: TensorEntry, bias: TensorEntry) => qkLayerNorm(g, x, g.weight(weight), g.weight(bias), w.qkNormLayout, D);
  const headsFirst = (x: string) => g.op('Transpose', [x], { perm: [0, 2, 1, 3] }); // [B, T, heads, D] ↔ [B, heads, T, D]

  const q = applyRotary(g, normed(projectHeads(l.q, l.qBias, H), l.qNormWeight, l.qNormBias), shared.cos, shared.sin); // [B, T, H, D]
  const k = applyRotary(g, normed(projectHeads(l.k, l.kBias, Hkv), l.kNormWeight, l.kNormBias), shared.cos, shared.sin); // [B, T, Hkv, D]
  const v = projectHeads(l.v, l.vBias, Hkv); // [B, T, Hkv, D]
  const a = attention(g, { q: headsFirst(q), k: headsFirst(k), v: headsFirst(v) }, shared.bias, cache.past, D ** -0.5, cache.presentNames);
  const merged = g.op('Reshape', [headsFirst(a.y), g.int64s([0, 0, H * D])]); // [B, H, T, D] → [B, T, C]
  return { out: project(g, merged, l.o, opt(l.oBias), shared.rows), presentKey: a.presentKey, presentValue: a.presentValue };
}

/** y = x·Wᵀ (+ b) for a float or a quantized matrix. x: [B, T, in] → [B, T, out]; `rows` is [B, T, -1] */
function project(g: GraphBuilder, x: string, weight: Matrix, bias: string | undefined, rows: string): string {
  if (isQuantized(weight)) return quantizedLinear(g, x, weight, { bias });
  if (!isTransposed(weight)) return linear(g, x, g.weight(weight), { bias, shape: rows });
  const y = g.op('MatMul', [x, g.weight(weight.transposed)]);
  return bias ? g.op('Add', [y, bias]) : y;
}

/**
 * logits = hidden · lm_headᵀ, optionally over a row range [start, end) of lm_head only (e.g. the
 * 8192 image-token rows). The row Slice reads constants, so ONNX Runtime folds it at load.
 * The logits are float32 whatever the activation type (HF's `logits.float()`).
 * hidden: [B, T, C] → [B, T, end - start]
 */
export function emitLmHead(g: GraphBuilder, w: DecoderWeights, hidden: string, opts: { rows?: [number, number]; output?: string } = {}): string {
  if (opts.rows) {
    const [start, end] = opts.rows;
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= w.config.vocabSize)) {
      throw new Error(`lm-head rows [${start}, ${end}) are not a range inside the vocabulary (${w.config.vocabSize})`);
    }
  }
  const asFloat32 = g.root().floatType === DataType.FLOAT;
  const named = opts.output ? { output: opts.output } : {};
  // a bundle stores the rows it is asked for most (the image tokens') as a matrix of their own
  const stored = opts.rows && w.lmHeadRows.get(`${opts.rows[0]}:${opts.rows[1]}`);
  const [matrix, rows] = stored ? [stored, undefined] : [w.lmHead, opts.rows];
  let logits: string;
  if (isQuantized(matrix)) {
    logits = quantizedLinear(g, hidden, matrix, { rows, ...(asFloat32 ? named : {}) });
  } else if (isTransposed(matrix)) {
    const full = g.weight(matrix.transposed); // [C, V]
    let head = full;
    if (rows) {
      const [start, end] = rows;
      head = weightDerived(g, `columns:${start}:${end}:${full}`, (root) => root.op('Slice', [full, root.int64s([start]), root.int64s([end]), root.int64s([1])])); // [C, end - start]
    }
    logits = g.op('MatMul', [hidden, head], {}, asFloat32 ? named : {});
  } else {
    const full = g.weight(matrix); // [V, C]
    let head = full;
    if (rows) {
      const [start, end] = rows;
      head = weightDerived(g, `rows:${start}:${end}:${full}`, (root) => root.op('Slice', [full, root.int64s([start]), root.int64s([end]), root.int64s([0])])); // [end - start, C]
    }
    logits = linear(g, hidden, head, { output: asFloat32 ? opts.output : undefined });
  }
  return asFloat32 ? logits : g.op('Cast', [logits], { to: DataType.FLOAT }, named);
}

/** genai / Optimum names of layer i's caches. */
export const cacheNames = (i: number) => ({
  pastKey: `past_key_values.${i}.key`,
  pastValue: `past_key_values.${i}.value`,
  presentKey: `present.${i}.key`,
  presentValue: `present.${i}.value`,
});

export interface DecoderGraphOptions {
  /** 'all' positions (default) or only the 'last' one (what a generation step needs). */
  logits?: 'all' | 'last';
  /** Only these lm_head rows [start, end); default the whole vocabulary. */
  lmHeadRows?: [number, number];
  /** Activation and KV-cache type (precision.ts activationType); default float32. Logits stay float32. */
  floatType?: DataTypeId;
}

/**
 * The stand-alone decoder graph. Inputs: input_ids, attention_mask, position_ids (int64) and
 * past_key_values.{i}.key|value (past may be 0 long; in the activation type). Outputs: logits
 * [B, T or 1, V] (float32) and present.{i}.key|value.
 */
export function buildDecoderGraph(w: DecoderWeights, opts: DecoderGraphOptions = {}): BuiltModel {
  const c = w.config;
  const g = new GraphBuilder('anole_decoder');
  const T = (g.floatType = opts.floatType ?? DataType.FLOAT);
  const layers = c.numHiddenLayers;
  const cacheDims = ['batch', c.numKeyValueHeads, 'past_sequence', c.headDim];
  const presentDims = ['batch', c.numKeyValueHeads, 'total_sequence', c.headDim];
  const names = Array.from({ length: layers }, (_, i) => cacheNames(i));
  const io: DecoderIO = {
    inputIds: g.input('input_ids', DataType.INT64, ['batch', 'sequence']),
    attentionMask: g.input('attention_mask', DataType.INT64, ['batch', 'total_sequence']),
    positionIds: g.input('position_ids', DataType.INT64, ['batch', 'sequence']),
    pastKeys: names.map((n) => g.input(n.pastKey, T, cacheDims)),
    pastValues: names.map((n) => g.input(n.pastValue, T, cacheDims)),
    presentKeys: names.map((n) => n.presentKey),
    presentValues: names.map((n) => n.presentValue),
  };
  let { hidden } = emitDecoderForward(g, w, io);
  if (opts.logits === 'last') hidden = g.op('Slice', [hidden, g.int64s([-1]), g.int64s([2 ** 53]), g.int64s([1])]); // [B, 1, C]
  emitLmHead(g, w, hidden, { rows: opts.lmHeadRows, output: 'logits' });
  const vocab = opts.lmHeadRows ? opts.lmHeadRows[1] - opts.lmHeadRows[0] : c.vocabSize;
  g.output('logits', DataType.FLOAT, ['batch', opts.logits === 'last' ? 1 : 'sequence', vocab]);
  for (const n of names) {
    g.output(n.presentKey, T, presentDims);
    g.output(n.presentValue, T, presentDims);
  }
  return g.build();
}
