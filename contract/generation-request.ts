import type { TokenConstraints } from '../model/constraints.ts';

/** How one kind of token (text or image) is chosen. */
export interface SamplingSettings {
  temperature: number;
  topP: number;
  /** 0 = off (the reference has no top-k). */
  topK: number;
  greedy: boolean;
}

/** One sampled sequence: a prompt, its mode's constraints and how to sample. */
export interface SequenceRequest {
  /** The prompt's token ids, `<image>` placeholders already replaced by image tokens. */
  promptIds: number[];
  constraints: TokenConstraints;
  maxNewTokens: number;
  text: SamplingSettings;
  image: SamplingSettings;
  /** Applied to text tokens only; 1 = off. */
  repetitionPenalty: number;
  /**
   * OpenAI's presence and frequency penalties, text tokens only (0 = off): a token's logit loses
   * presence·[count > 0] + frequency·count, count being how often this sequence has generated it.
   */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Classifier-free guidance for image tokens (docs/model.md §6.2); scales of 1 turn it off. */
  guidance: { text: number; image: number };
  /** The n-th token of the sequence uses the n-th uniform of this seed's stream. */
  seed: number;
  /** Token id → bias added to its logit after the mode's mask (a forbidden token stays forbidden). */
  logitBias?: Record<number, number>;
  /** Stops this sequence at the next chunk boundary. */
  signal?: AbortSignal;
}

/**
 * Defaults that give good pictures (docs/model.md §6.1, §6.4): greedy image tokens give blank
 * images, so images sample at 0.7 / 0.9 with guidance 3.0 (text) and 1.2 (image); text follows
 * Anole's reference at 1.0 / 0.9 with repetition penalty 1.2.
 */
export const DEFAULT_SAMPLING = {
  text: { temperature: 1.0, topP: 0.9, topK: 0, greedy: false },
  image: { temperature: 0.7, topP: 0.9, topK: 0, greedy: false },
  repetitionPenalty: 1.2,
  guidance: { text: 3.0, image: 1.2 },
} as const;

export function guidanceEnabled(request: Pick<SequenceRequest, 'guidance'>): boolean {
  return request.guidance.text !== 1 || request.guidance.image !== 1;
}

/**
 * Cache rows a sequence holds in engine v2 while it runs: three when guidance is on and it can draw an
 * image (the full, image-only and unconditioned streams), else one. The worker counts jobs with it.
 */
export function cacheRowsPerSequence(request: Pick<SequenceRequest, 'guidance' | 'constraints'>): 1 | 3 {
  const k = request.constraints;
  return guidanceEnabled(request) && (k.startInImage || k.allowBoi) ? 3 : 1;
}
