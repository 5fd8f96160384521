import { imageVocabulary } from '../../model/vocabulary.ts';
import type { ForwardOutput, TextModel } from './text-model.ts';

/**
 * Greedy decoding with one `session.run` per token and the KV cache fed back through JS: the
 * plain baseline the generation engine is checked against.
 *
 * - 'text': image tokens, boi and eoi are never chosen (HF SuppressTokensLogitsProcessor, the
 *   "text-only" mode); a row stops at EOS, the batch at max_new_tokens or when every row stopped.
 * - 'image': one image per row: boi, exactly image_seq_length image tokens, eoi. boi and eoi are
 *   forced (no choice to make), every step in between picks among the image tokens only.
 */
export type GenerationMode = 'text' | 'image';

export interface GreedyOptions {
  mode: GenerationMode;
  /** Text mode: the most new tokens per row. Image mode always makes image_seq_length + 2. */
  maxNewTokens?: number;
}

/** Left-pads prompts to one length with the pad id; the mask marks the real tokens. */
export function leftPad(prompts: readonly (readonly number[])[], padId: number): { inputIds: number[][]; attentionMask: number[][] } {
  const length = Math.max(...prompts.map((p) => p.length));
  if (prompts.length === 0 || length === 0) throw new Error('at least one non-empty prompt is needed');
  if (prompts.some((p) => p.length === 0)) throw new Error('prompts must not be empty');
  return {
    inputIds: prompts.map((p) => [...new Array(length - p.length).fill(padId), ...p]),
    attentionMask: prompts.map((p) => [...new Array(length - p.length).fill(0), ...new Array(p.length).fill(1)]),
  };
}

/** The new token ids of each row (text mode: up to and including EOS). */
export async function greedyGenerate(model: TextModel, prompts: number[][], opts: GreedyOptions): Promise<number[][]> {
  return opts.mode === 'text' ? generateText(model, prompts, opts.maxNewTokens) : generateImage(model, prompts, opts.maxNewTokens);
}

// The highest logit of row b's last position among `candidates` (ascending ids: ties go to the lowest id, as torch.argmax).
function argmaxLast(out: ForwardOutput, b: number, candidates: Int32Array): number {
  const [, t, v] = out.dims;
  const base = (b * t + t - 1) * v;
  let best = candidates[0];
  for (const id of candidates) if (out.logits[base + id] > out.logits[base + best]) best = id;
  return best;
}

async function generateText(model: TextModel, prompts: number[][], maxNewTokens: number | undefined): Promise<number[][]> {
  if (!maxNewTokens || maxNewTokens < 1) throw new Error('text generation needs maxNewTokens ≥ 1');
  const c = model.config;
  const banned = new Set<number>([...imageVocabulary(c).codeToToken, c.boiTokenId, c.eoiTokenId]);
  const allowed = Int32Array.from({ length: c.vocabSize }, (_, id) => id).filter((id) => !banned.has(id));

  const generated: number[][] = prompts.map(() => []);
  const finished = prompts.map(() => false);
  let out = await model.forward(leftPad(prompts, c.padTokenId));
  for (let step = 0; ; step++) {
    // a finished row keeps being fed pad tokens, as HF generate() does
    const next = prompts.map((_, b) => (finished[b] ? c.padTokenId : argmaxLast(out, b, allowed)));
    next.forEach((id, b) => {
      if (finished[b]) return;
      generated[b].push(id);
      finished[b] = id === c.eosTokenId;
    });
    if (step + 1 === maxNewTokens || finished.every(Boolean)) return generated;
    out = await model.forward({ inputIds: next.map((id) => [id]), cache: out.cache });
  }
}

async function generateImage(model: TextModel, prompts: number[][], maxNewTokens: number | undefined): Promise<number[][]> {
  const c = model.config;
  const length = c.imageSeqLength;
  if (maxNewTokens !== undefined && maxNewTokens < length + 2) {
    throw new Error(`an image needs ${length + 2} new tokens (boi, ${length} image tokens, eoi); maxNewTokens is ${maxNewTokens}`);
  }
  const imageIds = Int32Array.from(imageVocabulary(c).codeToToken).sort();

  // boi is forced, so it is prefilled with the prompt instead of costing a step of its own
  const generated = prompts.map(() => [c.boiTokenId]);
  let out = await model.forward(leftPad(prompts.map((p) => [...p, c.boiTokenId]), c.padTokenId));
  for (let i = 0; i < length; i++) {
    const next = prompts.map((_, b) => argmaxLast(out, b, imageIds));
    next.forEach((id, b) => generated[b].push(id));
    if (i + 1 < length) out = await model.forward({ inputIds: next.map((id) => [id]), cache: out.cache });
  }
  // eoi closes the image without a forward: nothing is chosen after it
  generated.forEach((row) => row.push(c.eoiTokenId));
  return generated;
}
