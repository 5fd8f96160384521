import { imageVocabulary } from '../../model/vocabulary.ts';
import { DataType, GraphBuilder, type BuiltModel, type DataTypeId } from '../onnx/graph-builder.ts';
import { cacheNames, emitDecoderForward, emitLmHead, type DecoderWeights } from './decoder.ts';
import { mixGuidance, sampleTokens } from './sampler.ts';

/**
 * Generation of a chunk of up to `steps` tokens in ONE session.run: an ONNX Loop whose body
 * picks the next token of every sequence (mode mask, guidance mix, penalty, bias, temperature,
 * top-k/top-p, a seeded uniform) and runs the decoder on it. The KV cache stays inside ONNX
 * Runtime for the whole chunk and crosses into JavaScript once per chunk, not once per token.
 *
 * Rows and groups: a batch has R rows (streams with a KV cache) and G groups (sampled
 * sequences). A group owns one row, or three while it draws an image with guidance (full,
 * image-conditioned, unconditioned); the token it samples is fed to all of its rows.
 *
 * Per group, the mode's state machine (functions/generation/constraints.ts):
 *   image_count = -1     text: `text_allowed`, plus boi when allowed and an image still fits
 *   0 ≤ image_count < N  inside an image: image tokens only
 *   image_count = N      the image is complete: eoi only
 *   done                 pad (the row idles until the chunk ends)
 *
 * The chunk stops early when a sequence finishes, or when a guided sequence enters or leaves an
 * image (the engine then adds or drops its guidance rows).
 *
 * The loop carries each row's last hidden state, not its logits: a chunk starts with the lm-head
 * and sampling and ends with the forward of its last token. So the prefill needs no lm-head of its
 * own (one big matrix fewer for ONNX Runtime to prepack at load), the image-head loop applies its
 * own rows from its first step, and a row carries C numbers between chunks instead of V.
 */

/** Names of the per-chunk inputs; `steps` and `uniforms` set how far the chunk may go. */
export const LOOP_INPUTS = {
  steps: 'steps', // int64 scalar
  uniforms: 'uniforms', // [steps, G] float32
  hidden: 'hidden', // [R, 1, C] each row's last hidden state (after the final norm), decoder float type
  attentionMask: 'attention_mask', // [R, S]
  positionIds: 'position_ids', // [R, 1] position of the next token
  imageCount: 'image_count', // [G] int64
  done: 'done', // [G] bool
  remaining: 'remaining', // [G] int64 tokens left in the budget
  seen: 'seen', // [G, V] bool tokens produced or prompted (repetition penalty)
  rowGroup: 'row_group', // [R] int64 group fed by each row
  rowFull: 'row_full', // [G] int64
  rowImage: 'row_image', // [G] int64 (= row_full without guidance)
  rowUncond: 'row_uncond', // [G] int64
  guided: 'guided', // [G] bool
  scaleImage: 'scale_image', // [G] float32
  scaleText: 'scale_text', // [G] float32
  textAllowed: 'text_allowed', // [G, V] bool
  allowBoi: 'allow_boi', // [G] bool
  stopAfterImage: 'stop_after_image', // [G] bool
  temperature: 'temperature', // [G, 2] float32: [text, image]
  topP: 'top_p', // [G, 2] float32
  topK: 'top_k', // [G, 2] int64
  greedy: 'greedy', // [G, 2] bool
  penalty: 'repetition_penalty', // [G] float32 (text only)
  bias: 'logit_bias', // [G, V] float32
} as const;

/** Output names: the carried state after the chunk, and the tokens it produced. */
export const LOOP_OUTPUTS = {
  tokens: 'tokens', // [steps run, G] int64
  hidden: 'next.hidden',
  attentionMask: 'next.attention_mask',
  positionIds: 'next.position_ids',
  imageCount: 'next.image_count',
  done: 'next.done',
  remaining: 'next.remaining',
  seen: 'next.seen',
} as const;

/**
 * `head: 'image'` builds the variant for chunks in which every sequence is drawing an image: the
 * lm-head keeps only the image-token rows (8192 of 65536 on the real model), so each step reads
 * an eighth of the head's weights and samples from 8192 logits. The engine uses it only for
 * chunks that end before any image is complete, so its state machine never leaves the image.
 */
export type LoopHead = 'full' | 'image';

export interface GenerationLoopOptions {
  /** The decoder's activation and KV-cache type (precision.ts); default float32. Logits and sampling stay float32. */
  floatType?: DataTypeId;
}

export function buildGenerationLoop(w: DecoderWeights, head: LoopHead = 'full', opts: GenerationLoopOptions = {}): BuiltModel {
  const g = new GraphBuilder(`anole_generation_loop_${head}`);
  g.floatType = opts.floatType ?? DataType.FLOAT;
  const outputs = emitGenerationLoop(g, g, w, head, { declareInputs: true });
  for (const [name, type, dims] of outputs) g.output(name, type as never, dims);
  return g.build();
}

/** A value's name, element type and dims. */
export type ValueSpec = [string, number, (number | string)[]];

/**
 * Emits the chunk Loop into `at` (the root graph, or a branch of a graph that also holds other
 * phases, generator-graph.ts): its inputs are the root graph's (declared here with
 * `declareInputs`), its outputs get the names LOOP_OUTPUTS / present.* unless `rename` maps them.
 * `symbolicWidths` declares the bias width and the positions' second dim symbolic, for
 * a graph whose inputs also serve the image head and the prefill. `steps` names the trip count
 * (default the `steps` input). Returns the outputs in order.
 */
export function emitGenerationLoop(
  g: GraphBuilder,
  at: GraphBuilder,
  w: DecoderWeights,
  head: LoopHead,
  opts: { declareInputs: boolean; rename?: (name: string) => string; symbolicWidths?: boolean; steps?: string },
): ValueSpec[] {
  const c = w.config;
  const V = c.vocabSize;
  const codeToToken = imageVocabulary(c).codeToToken;
  const imageRows = imageTokenRange(codeToToken);
  if (head === 'image' && !imageRows) throw new Error('the image-head loop needs the image tokens to be one contiguous id range');
  const W = head === 'image' ? codeToToken.length : V; // logits per row
  const N = c.imageSeqLength;
  const L = c.numHiddenLayers;
  const I = LOOP_INPUTS;
  const O = LOOP_OUTPUTS;
  const T = g.floatType;
  const cacheDims = ['rows', c.numKeyValueHeads, 'past', c.headDim];

  // ---- main graph inputs -------------------------------------------------------------------
  const input = (name: string, type: number, dims: (number | string)[]) => opts.declareInputs && g.input(name, type as never, dims);
  input(I.steps, DataType.INT64, []);
  input(I.uniforms, DataType.FLOAT, ['steps', 'groups']);
  const carried: [string, number, (number | string)[]][] = [
    [I.hidden, T, ['rows', 1, c.hiddenSize]],
    [I.attentionMask, DataType.INT64, ['rows', 'past']],
    [I.positionIds, DataType.INT64, ['rows', opts.symbolicWidths ? 'positions' : 1]],
    ...Array.from({ length: L }, (_, i): [string, number, (number | string)[]][] => [
      [cacheNames(i).pastKey, T, cacheDims],
      [cacheNames(i).pastValue, T, cacheDims],
    ]).flat(),
    [I.imageCount, DataType.INT64, ['groups']],
    [I.done, DataType.BOOL, ['groups']],
    [I.remaining, DataType.INT64, ['groups']],
    [I.seen, DataType.BOOL, ['groups', V]],
  ];
  for (const [name, type, dims] of carried) input(name, type, dims);
  const perGroup: [string, number, (number | string)[]][] = [
    [I.rowGroup, DataType.INT64, ['rows']],
    [I.rowFull, DataType.INT64, ['groups']],
    [I.rowImage, DataType.INT64, ['groups']],
    [I.rowUncond, DataType.INT64, ['groups']],
    [I.guided, DataType.BOOL, ['groups']],
    [I.scaleImage, DataType.FLOAT, ['groups']],
    [I.scaleText, DataType.FLOAT, ['groups']],
    ...(head === 'full' ? [[I.textAllowed, DataType.BOOL, ['groups', V]] as [string, number, (number | string)[]]] : []),
    [I.allowBoi, DataType.BOOL, ['groups']],
    [I.stopAfterImage, DataType.BOOL, ['groups']],
    [I.temperature, DataType.FLOAT, ['groups', 2]],
    [I.topP, DataType.FLOAT, ['groups', 2]],
    [I.topK, DataType.INT64, ['groups', 2]],
    [I.greedy, DataType.BOOL, ['groups', 2]],
    [I.penalty, DataType.FLOAT, ['groups']],
    [I.bias, DataType.FLOAT, ['groups', opts.symbolicWidths ? 'width' : W]],
  ];
  for (const [name, type, dims] of perGroup) input(name, type, dims);

  // ---- loop body ----------------------------------------------------------------------------
  const b = at.subgraph('step');
  const iter = b.input('iter', DataType.INT64, []);
  b.input('cond_in', DataType.BOOL, []);
  const state = Object.fromEntries(carried.map(([name, type, dims]) => [name, b.input(`in.${name}`, type as never, dims)]));
  const col = (x: string) => b.op('Unsqueeze', [x, b.int64s([1])]); // [G] → [G, 1]
  const not = (x: string) => b.op('Not', [x]);
  const and = (x: string, y: string) => b.op('And', [x, y]);
  const or = (x: string, y: string) => b.op('Or', [x, y]);
  const eq = (x: string, id: number) => b.op('Equal', [x, b.int64(id)]);

  // where each group stands
  const imageCount = state[I.imageCount];
  const done = state[I.done];
  const remaining = state[I.remaining];
  const inImage = b.op('GreaterOrEqual', [imageCount, b.int64(0)]); // [G]
  const imageComplete = eq(imageCount, N);
  const drawingImage = and(inImage, not(imageComplete));

  // the lm-head on the last forward's hidden states: [R, 1, C] → [R, W]
  const rows = head === 'image' ? { rows: imageRows } : {};
  const rowLogits = b.op('Squeeze', [emitLmHead(b, w, state[I.hidden], rows), b.int64s([1])]);

  // guidance rows apply only inside an image
  const guidedNow = and(I.guided, inImage);
  const logits = mixGuidance(
    b,
    rowLogits,
    { full: I.rowFull, imageCond: b.op('Where', [guidedNow, I.rowImage, I.rowFull]), uncond: b.op('Where', [guidedNow, I.rowUncond, I.rowFull]) },
    { image: I.scaleImage, text: I.scaleText },
  ); // [G, V]

  // the mode's mask: boi only while boi + N image tokens + eoi still fit in the budget
  // (ONNX Runtime's CPU Where has no bool kernel, so the choice is spelt with And / Or)
  let allowed: string; // [G, W]
  if (head === 'image') {
    allowed = b.op('Expand', [b.constant('all_images', DataType.BOOL, [1, W], new Array(W).fill(1)), b.op('Shape', [logits])]);
  } else {
    // token sets that never change: image tokens, and one-hot rows for boi / eoi / pad
    const imageIds = new Uint8Array(V);
    for (const id of codeToToken) imageIds[id] = 1;
    const oneHot = (id: number) => Array.from({ length: V }, (_, j) => Number(j === id));
    const imageAllowed = g.constant('image_allowed', DataType.BOOL, [V], imageIds);
    const eoiOnly = g.constant('eoi_only', DataType.BOOL, [V], oneHot(c.eoiTokenId));
    const padOnly = g.constant('pad_only', DataType.BOOL, [V], oneHot(c.padTokenId));
    const isBoiColumn = g.constant('boi_column', DataType.BOOL, [V], oneHot(c.boiTokenId));
    const imageFits = and(I.allowBoi, b.op('GreaterOrEqual', [remaining, b.int64(N + 2)]));
    const textAllowed = or(I.textAllowed, and(b.op('Unsqueeze', [isBoiColumn, b.int64s([0])]), col(imageFits)));
    const active = not(done);
    allowed = or(
      or(and(col(done), padOnly), and(col(and(active, imageComplete)), eoiOnly)),
      or(and(col(and(active, drawingImage)), imageAllowed), and(col(and(active, not(inImage))), textAllowed)),
    );
  }

  // text or image sampling settings, per group
  const stateColumn = col(b.op('Cast', [inImage], { to: DataType.INT64 })); // [G, 1]: 0 text, 1 image
  const pickSetting = (x: string) => b.op('Squeeze', [b.op('GatherElements', [x, stateColumn], { axis: 1 }), b.int64s([1])]);
  const picked = sampleTokens(b, {
    logits,
    allowed,
    temperature: pickSetting(I.temperature),
    topP: pickSetting(I.topP),
    topK: pickSetting(I.topK),
    greedy: pickSetting(I.greedy),
    // Gather at the scalar iteration gives [G]; a bare Squeeze would also drop G when it is 1
    uniform: b.op('Gather', [I.uniforms, iter], { axis: 0 }),
    // the penalty is for text tokens, which an image chunk never draws
    repetition: head === 'full' ? { penalty: b.op('Where', [inImage, b.float(1), I.penalty]), seen: state[I.seen] } : undefined,
    bias: I.bias,
  });
  const chosen = head === 'image' ? b.op('Gather', [b.constant('code_to_token', DataType.INT64, [W], Array.from(codeToToken)), picked], { axis: 0 }) : picked;
  const token = b.op('Where', [done, b.int64(c.padTokenId), chosen]); // [G]

  // advance the state machine
  const opensImage = and(not(inImage), eq(token, c.boiTokenId));
  const nextCount = b.op('Where', [
    done,
    imageCount,
    b.op('Where', [opensImage, b.int64(0), b.op('Where', [drawingImage, b.op('Add', [imageCount, b.int64(1)]), b.op('Where', [imageComplete, b.int64(-1), imageCount])])]),
  ]);
  const nextRemaining = b.op('Where', [done, remaining, b.op('Sub', [remaining, b.int64(1)])]);
  const finishes = and(
    not(done),
    or(or(eq(token, c.eosTokenId), b.op('LessOrEqual', [nextRemaining, b.int64(0)])), and(imageComplete, I.stopAfterImage)),
  );
  const nextDone = or(done, finishes);
  const nextSeen = b.op('ScatterElements', [state[I.seen], col(token), b.op('Expand', [b.constant('true', DataType.BOOL, [1, 1], [1]), b.op('Shape', [col(token)])])], { axis: 1 });

  // The chunk ends when the engine has work to do: a sequence finished, opened an image (its
  // guidance rows join, and a batch that is all images moves to the image-head loop), or a guided
  // image closed (its guidance rows leave).
  const guidanceLeaves = and(I.guided, and(imageComplete, not(done)));
  const event = or(finishes, or(opensImage, guidanceLeaves));
  const anyEvent = b.op('Cast', [b.op('ReduceMax', [b.op('Cast', [event], { to: DataType.INT64 })], { keepdims: 0 })], { to: DataType.BOOL });
  b.op('Not', [anyEvent], {}, { output: 'cond_out' });

  // every row of a group is fed the group's token; one more position, one more visible key
  const rowIds = col(b.op('Gather', [token, I.rowGroup], { axis: 0 })); // [R, 1]
  const mask = b.op('Concat', [state[I.attentionMask], b.op('ConstantOfShape', [b.op('Shape', [rowIds])], { value: { tensor: { dims: [1], dataType: DataType.INT64, int64Data: [1] } } })], { axis: 1 });
  const forward = emitDecoderForward(b, w, {
    inputIds: rowIds,
    attentionMask: mask,
    positionIds: state[I.positionIds],
    pastKeys: Array.from({ length: L }, (_, i) => state[cacheNames(i).pastKey]),
    pastValues: Array.from({ length: L }, (_, i) => state[cacheNames(i).pastValue]),
  });

  // body outputs: cond, the carried state (same order as the inputs), then the scan output
  b.output('cond_out', DataType.BOOL, []);
  const next: Record<string, string> = {
    [I.hidden]: forward.hidden,
    [I.attentionMask]: mask,
    [I.positionIds]: b.op('Add', [state[I.positionIds], b.int64(1)]),
    [I.imageCount]: nextCount,
    [I.done]: nextDone,
    [I.remaining]: nextRemaining,
    [I.seen]: nextSeen,
  };
  forward.presentKeys.forEach((k, i) => (next[cacheNames(i).pastKey] = k));
  forward.presentValues.forEach((v, i) => (next[cacheNames(i).pastValue] = v));
  // named directly: an Identity in front of a body output would copy the cache every step
  for (const [name, type, dims] of carried) b.output(next[name], type as never, dims);
  b.output(token, DataType.INT64, ['groups']);

  // ---- the Loop node and the main graph outputs ----------------------------------------------
  const rename = opts.rename ?? ((name: string) => name);
  const outputs: ValueSpec[] = [
    ...carried.map(([name, type, dims]): ValueSpec => [rename(outputName(name)), type, dims.map((d) => (d === 'past' ? 'next_past' : d))]),
    [rename(O.tokens), DataType.INT64, ['steps_run', 'groups']],
  ];
  at.node('Loop', [opts.steps ?? I.steps, '', ...carried.map(([name]) => name)], { body: { graph: b } }, { outputs: outputs.map(([name]) => name) });
  return outputs;
}

/** The main-graph output that carries input `name` into the next chunk. */
export function outputName(name: string): string {
  const known = Object.entries(LOOP_INPUTS).find(([, v]) => v === name)?.[0] as keyof typeof LOOP_OUTPUTS | undefined;
  if (known && known in LOOP_OUTPUTS) return LOOP_OUTPUTS[known];
  return name.replace('past_key_values.', 'present.');
}

/** [first, last + 1) when the image tokens are one contiguous id range (they are in Anole's vocabulary). */
export function imageTokenRange(codeToToken: Int32Array): [number, number] | undefined {
  const first = codeToToken[0];
  return codeToToken.every((id, code) => id === first + code) ? [first, first + codeToToken.length] : undefined;
}
