import { DataType, type GraphBuilder } from '../onnx/graph-builder.ts';

/**
 * Token selection inside the graph, so a whole chunk of tokens is generated in one
 * `session.run`. Randomness comes in as uniforms drawn in JavaScript from a seeded generator,
 * which keeps runs reproducible (ONNX's random ops have no CPU kernel at opset 23 anyway).
 *
 * Order follows the reference text decoder (docs/model.md §6.1): repetition penalty →
 * (OpenAI's presence / frequency penalties, then the bias) →
 * allowed-token mask → temperature → top-k → top-p → one multinomial draw. Greedy rows take the
 * first arg-max of the masked logits.
 */

/** float32 lowest: what HF writes into disallowed logits (never -inf: -inf·penalty and 0·-inf make NaN). */
export const LOWEST = -3.4028234663852886e38;

export interface SamplerInputs {
  /** [G, V] float32 logits, one row per sampled sequence. */
  logits: string;
  /** [G, V] bool: tokens this row may produce now. */
  allowed: string;
  /** [G] float32 > 0. */
  temperature: string;
  /** [G] float32 in (0, 1]; 1 keeps the whole distribution. */
  topP: string;
  /** [G] int64; 0 keeps every token. */
  topK: string;
  /** [G] bool: take the arg-max instead of sampling. */
  greedy: string;
  /** [G] float32 uniforms in [0, 1). */
  uniform: string;
  /** Optional repetition penalty: [G] float32 (1 = off) and [G, V] bool of tokens seen so far. */
  repetition?: { penalty: string; seen: string };
  /** Optional presence / frequency penalties (OpenAI): [G] float32 each (0 = off) and [G, V] float32 counts of generated tokens. */
  occurrence?: { presence: string; frequency: string; counts: string };
  /** Optional additive bias [G, V] float32 (e.g. a user's logit_bias), applied after the penalty. */
  bias?: string;
}

/** Emits the sampler and returns the chosen column index per row: [G] int64. */
export function sampleTokens(g: GraphBuilder, x: SamplerInputs): string {
  let logits = x.logits;
  if (x.repetition) logits = repetitionPenalty(g, logits, x.repetition.penalty, x.repetition.seen);
  if (x.occurrence) logits = occurrencePenalty(g, logits, x.occurrence);
  if (x.bias) logits = g.op('Add', [logits, x.bias]);
  const lowest = g.float(LOWEST, 'lowest');
  const masked = g.op('Where', [x.allowed, logits, lowest]); // [G, V]

  const greedyPick = g.op('ArgMax', [masked], { axis: 1, keepdims: 0, select_last_index: 0 }); // [G]

  // Temperature, then sort descending: TopK over the whole row (ties keep the lower index first).
  const scaled = g.op('Div', [masked, g.op('Unsqueeze', [x.temperature, g.int64s([1])])]);
  const vocab = g.op('Shape', [scaled], { start: 1, end: 2 }); // [1]
  const [sorted, order] = g.node('TopK', [scaled, vocab], { axis: 1, largest: 1, sorted: 1 }, { outputs: 2 }); // [G, V] each

  // top-k: positions at or beyond k (0 = off) drop out before the softmax renormalises.
  const rank = g.op('Range', [g.int64(0), g.op('Squeeze', [vocab, g.int64s([0])]), g.int64(1)]); // [V]
  // k = 0 keeps every token: a k past any vocabulary (not the row's width, which would bring a
  // shape computed on the host into device arithmetic: a copy per run that rules out CUDA graphs)
  const kEff = g.op('Where', [g.op('Equal', [x.topK, g.int64(0)]), g.int64(2 ** 53), x.topK]); // [G]
  const inTopK = g.op('Less', [g.op('Unsqueeze', [rank, g.int64s([0])]), g.op('Unsqueeze', [kEff, g.int64s([1])])]); // [G, V]
  const probs = g.op('Softmax', [g.op('Where', [inTopK, sorted, lowest])], { axis: 1 }); // [G, V]

  // top-p: keep the smallest prefix whose mass reaches p (a token stays if the mass before it is < p).
  const cumulative = g.op('CumSum', [probs, g.int64(1)]);
  const before = g.op('Sub', [cumulative, probs]);
  const inNucleus = g.op('Less', [before, g.op('Unsqueeze', [x.topP, g.int64s([1])])]);
  const kept = g.op('Where', [inNucleus, probs, g.float(0)]);

  // Multinomial draw: the first position whose running mass exceeds u · total.
  const keptCumulative = g.op('CumSum', [kept, g.int64(1)]);
  const total = g.op('ReduceSum', [kept, g.int64s([1])], { keepdims: 1 }); // [G, 1]
  const threshold = g.op('Mul', [g.op('Unsqueeze', [x.uniform, g.int64s([1])]), total]);
  const below = g.op('Cast', [g.op('LessOrEqual', [keptCumulative, threshold])], { to: DataType.INT64 });
  const keptCount = g.op('ReduceSum', [g.op('Cast', [inNucleus], { to: DataType.INT64 }), g.int64s([1])], { keepdims: 1 });
  // Float rounding can leave u·total past the last kept position: clamp to the nucleus.
  const position = g.op('Min', [
    g.op('ReduceSum', [below, g.int64s([1])], { keepdims: 1 }),
    g.op('Sub', [g.op('Min', [keptCount, g.op('Unsqueeze', [kEff, g.int64s([1])])]), g.int64(1)]),
  ]); // [G, 1]
  const sampledPick = g.op('Squeeze', [g.op('GatherElements', [order, position], { axis: 1 }), g.int64s([1])]); // [G]

  return g.op('Where', [x.greedy, greedyPick, sampledPick]);
}

/** HF RepetitionPenaltyLogitsProcessor on every token seen so far: s < 0 ? s·p : s/p. */
function repetitionPenalty(g: GraphBuilder, logits: string, penalty: string, seen: string): string {
  const p = g.op('Unsqueeze', [penalty, g.int64s([1])]); // [G, 1]
  const penalised = g.op('Where', [g.op('Less', [logits, g.float(0)]), g.op('Mul', [logits, p]), g.op('Div', [logits, p])]);
  return g.op('Where', [seen, penalised, logits]);
}

/** OpenAI's penalties: l − presence·[count > 0] − frequency·count (both 0 leave l exactly as it was). */
function occurrencePenalty(g: GraphBuilder, logits: string, x: { presence: string; frequency: string; counts: string }): string {
  const presence = g.op('Unsqueeze', [x.presence, g.int64s([1])]); // [G, 1]
  const frequency = g.op('Unsqueeze', [x.frequency, g.int64s([1])]);
  const present = g.op('Cast', [g.op('Greater', [x.counts, g.float(0)])], { to: DataType.FLOAT });
  return g.op('Sub', [logits, g.op('Add', [g.op('Mul', [present, presence]), g.op('Mul', [x.counts, frequency])])]);
}

/**
 * Classifier-free guidance as Meta's reference mixes it (InBatchInstructCFGLogitsProcessor):
 * l = u + s_img·(i − u) + s_txt·(f − i), evaluated in this order in float32. `full`, `imageCond`
 * and `uncond` are [G] int64 row indices into `logits` [R, V]; scales are [G] float32.
 * A row without guidance points all three indices at itself: l = f exactly.
 */
export function mixGuidance(
  g: GraphBuilder,
  logits: string,
  rows: { full: string; imageCond: string; uncond: string },
  scales: { image: string; text: string },
): string {
  const f = g.op('Gather', [logits, rows.full], { axis: 0 });
  const i = g.op('Gather', [logits, rows.imageCond], { axis: 0 });
  const u = g.op('Gather', [logits, rows.uncond], { axis: 0 });
  const sImg = g.op('Unsqueeze', [scales.image, g.int64s([1])]);
  const sTxt = g.op('Unsqueeze', [scales.text, g.int64s([1])]);
  const withImage = g.op('Add', [u, g.op('Mul', [sImg, g.op('Sub', [i, u])])]);
  return g.op('Add', [withImage, g.op('Mul', [sTxt, g.op('Sub', [f, i])])]);
}
