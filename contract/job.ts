import type { GenerationMode, TokenConstraints } from '../model/constraints.ts';
import type { SamplingSettings } from './generation-request.ts';

/**
 * The one contract between the functions (which validate, preprocess, tokenize and compile the
 * mode's constraints) and the sidecar (which encodes images, generates, decodes and stores the
 * results). A job is plain JSON: it travels in a queue message and names its inputs and outputs
 * by key in a blob store, so large images never ride in the message.
 */
export interface GenerationJob {
  id: string;
  /** The prompt's token ids; each image appears as image_seq_length `<image>` placeholders. */
  promptIds: number[];
  /** Keys of the prepared images (float32 pixel values [3, H, W], see preparedImage), in prompt order. */
  images: string[];
  mode: GenerationMode;
  constraints: TokenConstraints;
  maxNewTokens: number;
  /** Sequences to sample from the prompt (e.g. n images); sequence k uses seed + k. */
  n: number;
  seed: number;
  text: SamplingSettings;
  image: SamplingSettings;
  repetitionPenalty: number;
  /** OpenAI's presence / frequency penalties on text tokens (absent = 0, off). */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Up to 4 strings: a sequence's text ends before the first of them to appear (absent = none). */
  stop?: string[];
  guidance: { text: number; image: number };
  logitBias: Record<string, number>;
  /** Where the images go: `${outputPrefix}image-{k}-{i}.png` (sequence k, its i-th image). */
  outputPrefix: string;
}

/** One part of a sequence's output, in generation order. */
export type OutputPart = { type: 'text'; text: string } | { type: 'image'; key: string; width: number; height: number };

export interface SequenceResult {
  /** The new tokens only. */
  tokenIds: number[];
  text: string;
  parts: OutputPart[];
  /** `stop`: its text reached one of the job's stop strings. */
  finishReason: 'eos' | 'length' | 'image' | 'canceled' | 'stop';
}

export interface JobResult {
  id: string;
  sequences: SequenceResult[];
  /** predictTimeMs: the job's own work (its images read, its sequences from their cache slots on), not a wait for slots. */
  metrics: { predictTimeMs: number; generatedTokens: number };
}

/** Prepared image bytes ↔ pixel values: little-endian float32 [3, H, W]. */
export const preparedImage = {
  contentType: 'application/x-anole-pixels-f32',
  encode(pixels: Float32Array): Uint8Array {
    return new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  },
  decode(bytes: Uint8Array): Float32Array {
    const copy = new Uint8Array(bytes); // aligned, and independent of the source buffer
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  },
};
