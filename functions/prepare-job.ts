import { preparedImage, type GenerationJob } from '../contract/job.ts';
import type { BlobStore } from '../contract/blob-store.ts';
import type { AnoleConfig } from '../model/config.ts';
import { DEFAULT_SAMPLING, type SamplingSettings } from '../contract/generation-request.ts';
import { compileConstraints, type GenerationMode } from '../model/constraints.ts';
import type { AnoleProcessor } from '../model/preprocess/processor.ts';

/** What a user asks for (the API's `input`, the CLI's options), before validation. */
export interface PredictionInput {
  prompt: string;
  /** Encoded image files (PNG, JPEG, WebP…), one per `<image>` marker in the prompt. */
  images?: Uint8Array[];
  mode?: GenerationMode;
  /** HF return_for_text_completion: no end-of-turn separator after the prompt. */
  textCompletion?: boolean;
  maxNewTokens?: number;
  n?: number;
  sampling?: {
    temperature?: number;
    topP?: number;
    topK?: number;
    seed?: number;
    repetitionPenalty?: number;
    presencePenalty?: number;
    frequencyPenalty?: number;
    greedy?: boolean;
  };
  /** Stop strings (at most 4): each sequence's text ends before the first to appear. */
  stop?: string[];
  guidance?: { text?: number; image?: number };
  /** Token id → bias in [-100, 100]. */
  logitBias?: Record<string, number>;
}

/** A request the service refuses: `param` names the offending field. */
export class InvalidInputError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
    this.name = 'InvalidInputError';
  }
}

export const LIMITS = { maxN: 16, maxLogitBiasEntries: 300, maxImages: 8, maxStops: 4 } as const;

/**
 * Turns a user's input into a job: the prompt through the processor, each image prepared (sharp)
 * and stored under `inputs/{id}/`, the mode compiled into token sets, sampling defaults filled in.
 */
export async function prepareJob(
  input: PredictionInput,
  ctx: { id: string; config: AnoleConfig; processor: AnoleProcessor; store: BlobStore; outputPrefix?: string; contextLength?: number },
): Promise<GenerationJob> {
  const { config, processor, store, id } = ctx;
  // the model's context, or the workers' shorter cache slots (ANOLE_MAX_CONTEXT)
  const context = Math.min(config.maxPositionEmbeddings, ctx.contextLength ?? Infinity);
  const mode = input.mode ?? 'text';
  const images = input.images ?? [];
  if (images.length > LIMITS.maxImages) throw new InvalidInputError('images', `at most ${LIMITS.maxImages} images per prompt, got ${images.length}`);
  const n = input.n ?? 1;
  if (!(Number.isInteger(n) && n >= 1 && n <= LIMITS.maxN)) throw new InvalidInputError('n', `n must be an integer from 1 to ${LIMITS.maxN}, got ${n}`);

  const processed = await processor.process(input.prompt, images, { textCompletion: input.textCompletion });
  const promptIds = processed.inputIds[0];
  const imageKeys: string[] = [];
  if (processed.pixelValues) {
    const [count, channels, height, width] = processed.imageDims;
    const size = channels * height * width;
    for (let k = 0; k < count; k++) {
      const key = `inputs/${id}/image-${k}.f32`;
      await store.put(key, preparedImage.encode(processed.pixelValues.slice(k * size, (k + 1) * size)), preparedImage.contentType);
      imageKeys.push(key);
    }
  }

  const N = config.imageSeqLength;
  const room = context - promptIds.length;
  const defaultMax = mode === 'image' ? N + 2 : mode === 'interleaved' ? 2 * (N + 2) + 256 : 256;
  const maxNewTokens = input.maxNewTokens ?? Math.min(defaultMax, room);
  // a prompt that fills the context is the prompt's fault, whatever max_new_tokens says
  if (room < 1) throw new InvalidInputError('prompt', `the prompt has ${promptIds.length} tokens: no room left in the context length ${context}`);
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 1)) {
    throw new InvalidInputError('max_new_tokens', `max_new_tokens must be a positive integer, got ${maxNewTokens}`);
  }
  if (room < 1 || maxNewTokens > room) {
    throw new InvalidInputError(
      room < 1 ? 'prompt' : 'max_new_tokens',
      `the prompt has ${promptIds.length} tokens; with max_new_tokens ${maxNewTokens} it exceeds the context length ${context}`,
    );
  }
  if (mode === 'image' && maxNewTokens < N + 2) {
    throw new InvalidInputError('max_new_tokens', `an image needs ${N + 2} new tokens (boi, ${N} image tokens, eoi); max_new_tokens is ${maxNewTokens}`);
  }

  const s = input.sampling ?? {};
  const settings = (defaults: SamplingSettings): SamplingSettings => ({
    temperature: check('sampling.temperature', s.temperature ?? defaults.temperature, (v) => v > 0 && v <= 10, 'in (0, 10]'),
    topP: check('sampling.top_p', s.topP ?? defaults.topP, (v) => v > 0 && v <= 1, 'in (0, 1]'),
    topK: check('sampling.top_k', s.topK ?? defaults.topK, (v) => Number.isInteger(v) && v >= 0 && v <= config.vocabSize, `an integer in [0, ${config.vocabSize}]`),
    greedy: s.greedy ?? defaults.greedy,
  });
  const logitBias = input.logitBias ?? {};
  const biasEntries = Object.entries(logitBias);
  if (biasEntries.length > LIMITS.maxLogitBiasEntries) {
    throw new InvalidInputError('logit_bias', `at most ${LIMITS.maxLogitBiasEntries} logit_bias entries, got ${biasEntries.length}`);
  }
  for (const [token, bias] of biasEntries) {
    const t = Number(token);
    if (!(Number.isInteger(t) && t >= 0 && t < config.vocabSize)) throw new InvalidInputError(`logit_bias.${token}`, `token id ${token} is not in the vocabulary [0, ${config.vocabSize})`);
    if (!(typeof bias === 'number' && bias >= -100 && bias <= 100)) throw new InvalidInputError(`logit_bias.${token}`, `bias ${bias} for token ${token} is not in [-100, 100]`);
  }
  const stop = input.stop ?? [];
  if (stop.length > LIMITS.maxStops) throw new InvalidInputError('stop', `at most ${LIMITS.maxStops} stop strings, got ${stop.length}`);
  stop.forEach((s, k) => {
    if (typeof s !== 'string' || s.length === 0) throw new InvalidInputError(`stop[${k}]`, 'a stop string must not be empty');
  });
  const penalty = (name: string, v: number | undefined) => check(`sampling.${name}`, v ?? 0, (x) => x >= -2 && x <= 2, 'in [-2, 2]');
  const scale = (name: string, v: number) => check(`guidance.${name}`, v, (x) => x >= 1 && x <= 20, 'in [1, 20]');
  return {
    id,
    promptIds,
    images: imageKeys,
    mode,
    constraints: compileConstraints(config, mode),
    maxNewTokens,
    n,
    seed: check('sampling.seed', s.seed ?? randomSeed(), (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 31, 'an integer in [0, 2^31)'),
    text: settings(DEFAULT_SAMPLING.text),
    image: settings(DEFAULT_SAMPLING.image),
    repetitionPenalty: check('sampling.repetition_penalty', s.repetitionPenalty ?? DEFAULT_SAMPLING.repetitionPenalty, (v) => v >= 1 && v <= 10, 'in [1, 10]'),
    ...(s.presencePenalty ? { presencePenalty: penalty('presence_penalty', s.presencePenalty) } : {}),
    ...(s.frequencyPenalty ? { frequencyPenalty: penalty('frequency_penalty', s.frequencyPenalty) } : {}),
    ...(stop.length > 0 ? { stop } : {}),
    guidance: {
      text: scale('text', input.guidance?.text ?? DEFAULT_SAMPLING.guidance.text),
      image: scale('image', input.guidance?.image ?? DEFAULT_SAMPLING.guidance.image),
    },
    logitBias,
    outputPrefix: ctx.outputPrefix ?? `outputs/${id}/`,
  };
}

function check(param: string, value: number, ok: (v: number) => boolean, what: string): number {
  if (typeof value !== 'number' || Number.isNaN(value) || !ok(value)) throw new InvalidInputError(param, `${param} must be ${what}, got ${value}`);
  return value;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}
