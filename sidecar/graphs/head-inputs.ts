import type { AnoleConfig } from '../../model/config.ts';
import { imageVocabulary } from '../../model/vocabulary.ts';
import { DataType } from '../onnx/graph-builder.ts';

/**
 * The token choice's inputs (token-choice.ts, the head graph of head-graph.ts): each row's last
 * hidden state, each group's state, and each group's settings.
 *
 * Rows and groups: a batch has R rows (streams with a KV cache) and G groups (sampled sequences).
 * A group owns one row, or three while it draws an image with guidance (full, image-conditioned,
 * unconditioned); the token it samples is fed to all of its rows.
 */
export const TOKEN_CHOICE_INPUTS = {
  hidden: 'hidden', // [R, 1, C] each row's last hidden state (after the final norm), decoder float type
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
  temperature: 'temperature', // [G, 2] float32: [text, image]
  topP: 'top_p', // [G, 2] float32
  topK: 'top_k', // [G, 2] int64
  greedy: 'greedy', // [G, 2] bool
  penalty: 'repetition_penalty', // [G] float32 (text only)
  presence: 'presence_penalty', // [G] float32 (text only; 0 = off)
  frequency: 'frequency_penalty', // [G] float32 (text only; 0 = off)
  bias: 'logit_bias', // [G, V] float32
} as const;

/**
 * `'image'` is the head for steps in which every sequence is drawing an image: the lm-head keeps
 * only the image-token rows (8192 of 65536 on the real model), so each step reads an eighth of the
 * head's weights and samples from 8192 logits.
 */
export type HeadKind = 'full' | 'image';

/** A value's name, element type and dims. */
export type ValueSpec = [string, number, (number | string)[]];

/**
 * Each group's settings for the token choice, fixed while the batch's rows stay the same: the rows
 * it samples from, guidance, the mode, sampling, penalty and bias (`biasWidth` columns: the
 * vocabulary, or the image head's).
 */
export function settingInputs(V: number, head: HeadKind, biasWidth: number | string): ValueSpec[] {
  const I = TOKEN_CHOICE_INPUTS;
  return [
    [I.rowGroup, DataType.INT64, ['rows']],
    [I.rowFull, DataType.INT64, ['groups']],
    [I.rowImage, DataType.INT64, ['groups']],
    [I.rowUncond, DataType.INT64, ['groups']],
    [I.guided, DataType.BOOL, ['groups']],
    [I.scaleImage, DataType.FLOAT, ['groups']],
    [I.scaleText, DataType.FLOAT, ['groups']],
    ...(head === 'full' ? [[I.textAllowed, DataType.BOOL, ['groups', V]] as ValueSpec] : []),
    [I.allowBoi, DataType.BOOL, ['groups']],
    [I.temperature, DataType.FLOAT, ['groups', 2]],
    [I.topP, DataType.FLOAT, ['groups', 2]],
    [I.topK, DataType.INT64, ['groups', 2]],
    [I.greedy, DataType.BOOL, ['groups', 2]],
    [I.penalty, DataType.FLOAT, ['groups']],
    [I.presence, DataType.FLOAT, ['groups']],
    [I.frequency, DataType.FLOAT, ['groups']],
    [I.bias, DataType.FLOAT, ['groups', biasWidth]],
  ];
}

/** Logits per row for a head: the vocabulary, or the image tokens (which must be one contiguous id range). */
export function logitWidth(c: AnoleConfig, head: HeadKind): number {
  if (head === 'full') return c.vocabSize;
  const codeToToken = imageVocabulary(c).codeToToken;
  if (!imageTokenRange(codeToToken)) throw new Error('the image head needs the image tokens to be one contiguous id range');
  return codeToToken.length;
}

/** [first, last + 1) when the image tokens are one contiguous id range (they are in Anole's vocabulary). */
export function imageTokenRange(codeToToken: Int32Array): [number, number] | undefined {
  const first = codeToToken[0];
  return codeToToken.every((id, code) => id === first + code) ? [first, first + codeToToken.length] : undefined;
}
