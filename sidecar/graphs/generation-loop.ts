import type { AnoleConfig } from '../../model/config.ts';
import { imageVocabulary } from '../../model/vocabulary.ts';
import { DataType, GraphBuilder, type BuiltModel, type DataTypeId } from '../onnx/graph-builder.ts';
import { cacheNames, emitDecoderForward, type DecoderWeights } from './decoder.ts';
import { emitTokenChoice } from './token-choice.ts';

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
 * Per group, the mode's state machine (model/constraints.ts):
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
  counts: 'counts', // [G, V] float32 how often each token was generated (presence / frequency penalties)
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
  presence: 'presence_penalty', // [G] float32 (text only; 0 = off)
  frequency: 'frequency_penalty', // [G] float32 (text only; 0 = off)
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
  counts: 'next.counts',
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
  const W = logitWidth(c, head);
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
    [I.counts, DataType.FLOAT, ['groups', V]],
  ];
  for (const [name, type, dims] of carried) input(name, type, dims);
  const perGroup = settingInputs(V, head, opts.symbolicWidths ? 'width' : W);
  for (const [name, type, dims] of perGroup) input(name, type, dims);

  // ---- loop body ----------------------------------------------------------------------------
  const b = at.subgraph('step');
  const iter = b.input('iter', DataType.INT64, []);
  b.input('cond_in', DataType.BOOL, []);
  const state = Object.fromEntries(carried.map(([name, type, dims]) => [name, b.input(`in.${name}`, type as never, dims)]));
  const step = emitTokenChoice(b, w, head, {
    hidden: state[I.hidden],
    imageCount: state[I.imageCount],
    done: state[I.done],
    remaining: state[I.remaining],
    seen: state[I.seen],
    counts: state[I.counts],
    // Gather at the scalar iteration gives [G]; a bare Squeeze would also drop G when it is 1
    uniform: b.op('Gather', [I.uniforms, iter], { axis: 0 }),
  });
  const col = (x: string) => b.op('Unsqueeze', [x, b.int64s([1])]); // [G] → [G, 1]
  const token = step.token;
  b.op('Not', [step.event], {}, { output: 'cond_out' });

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
    [I.imageCount]: step.nextCount,
    [I.done]: step.nextDone,
    [I.remaining]: step.nextRemaining,
    [I.seen]: step.nextSeen,
    [I.counts]: step.nextCounts,
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

/**
 * Each group's settings for the token choice (token-choice.ts), fixed while the batch's rows stay
 * the same: the rows it samples from, guidance, the mode, sampling, penalty and bias (`biasWidth`
 * columns: the vocabulary, or the image head's).
 */
export function settingInputs(V: number, head: LoopHead, biasWidth: number | string): ValueSpec[] {
  return [
    [LOOP_INPUTS.rowGroup, DataType.INT64, ['rows']],
    [LOOP_INPUTS.rowFull, DataType.INT64, ['groups']],
    [LOOP_INPUTS.rowImage, DataType.INT64, ['groups']],
    [LOOP_INPUTS.rowUncond, DataType.INT64, ['groups']],
    [LOOP_INPUTS.guided, DataType.BOOL, ['groups']],
    [LOOP_INPUTS.scaleImage, DataType.FLOAT, ['groups']],
    [LOOP_INPUTS.scaleText, DataType.FLOAT, ['groups']],
    ...(head === 'full' ? [[LOOP_INPUTS.textAllowed, DataType.BOOL, ['groups', V]] as ValueSpec] : []),
    [LOOP_INPUTS.allowBoi, DataType.BOOL, ['groups']],
    [LOOP_INPUTS.stopAfterImage, DataType.BOOL, ['groups']],
    [LOOP_INPUTS.temperature, DataType.FLOAT, ['groups', 2]],
    [LOOP_INPUTS.topP, DataType.FLOAT, ['groups', 2]],
    [LOOP_INPUTS.topK, DataType.INT64, ['groups', 2]],
    [LOOP_INPUTS.greedy, DataType.BOOL, ['groups', 2]],
    [LOOP_INPUTS.penalty, DataType.FLOAT, ['groups']],
    [LOOP_INPUTS.presence, DataType.FLOAT, ['groups']],
    [LOOP_INPUTS.frequency, DataType.FLOAT, ['groups']],
    [LOOP_INPUTS.bias, DataType.FLOAT, ['groups', biasWidth]],
  ];
}

/** Logits per row for a head: the vocabulary, or the image tokens (which must be one contiguous id range). */
export function logitWidth(c: AnoleConfig, head: LoopHead): number {
  if (head === 'full') return c.vocabSize;
  const codeToToken = imageVocabulary(c).codeToToken;
  if (!imageTokenRange(codeToToken)) throw new Error('the image head needs the image tokens to be one contiguous id range');
  return codeToToken.length;
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
