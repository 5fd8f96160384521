import { randomBytes } from 'node:crypto';
import type { GenerationJob } from '../../contract/job.ts';
import { newPrediction, type PredictionRecord, type WebhookEvent } from '../../contract/prediction.ts';
import { decodeImage, ImageInputError } from '../../model/preprocess/image-processor.ts';
import { InvalidInputError, prepareJob, type PredictionInput } from '../prepare-job.ts';
import { checkUrlResolves, AddressRefusedError } from '../../contract/address-policy.ts';
import type { ApiContext } from './deps.ts';
import { ApiError, fromInputError } from './errors.ts';
import { resolveImage } from './fetch-image.ts';

/**
 * The one way a prediction comes to exist, whichever endpoint asked (predictions, OpenAI images,
 * chat): fetch the images, prepare the job (sharp, tokenizer, constraints — all in the function,
 * so the GPU only generates), store the job, create the record (starting), enqueue a pointer.
 */
export interface NewPrediction {
  input: Omit<PredictionInput, 'images'>;
  /** Image references as the caller gave them (URL, data URI, upload id). */
  images: string[];
  /** The input as the API shows it back; its images are replaced by the stored keys. */
  shownInput: Record<string, unknown>;
  webhook: string | null;
  webhookEventsFilter: WebhookEvent[];
  deadline: string | null;
  /** prepareJob's parameter names (`max_new_tokens`, `images[0]`, `logit_bias.5`) → the caller's (the webhook is always `webhook`). */
  param: (name: string) => string;
}

export const DEFAULT_WEBHOOK_EVENTS: WebhookEvent[] = ['start', 'completed'];

/** Lowercase base32 of 128 random bits: unguessable, URL- and S3-key-safe. */
export function newId(prefix = ''): string {
  const bytes = randomBytes(16);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return prefix + out;
}

export async function createPrediction(ctx: ApiContext, owner: string, req: NewPrediction): Promise<{ record: PredictionRecord; job: GenerationJob }> {
  if (req.webhook) await checkWebhook(req.webhook, ctx, 'webhook');
  const id = newId();
  const sources = { policy: ctx.addressPolicy, limits: ctx.limits.image, store: ctx.store, owner };
  const images = await Promise.all(req.images.map((ref, k) => resolveImage(ref, sources, req.param(`images[${k}]`))));

  let job: GenerationJob;
  try {
    job = await prepareJob({ ...req.input, images }, { id, config: ctx.config, processor: ctx.processor, store: ctx.store, contextLength: ctx.contextLength });
  } catch (e) {
    if (e instanceof InvalidInputError) throw new ApiError(422, 'invalid_value', e.message, req.param(e.param));
    if (e instanceof ImageInputError) throw fromInputError(e, '', req.param(await culprit(e, images, ctx.limits.image.maxPixels)));
    throw e;
  }
  const jobKey = `jobs/${id}.json`;
  await ctx.store.put(jobKey, JSON.stringify(job), 'application/json');

  const record = newPrediction({
    id,
    owner,
    input: { ...req.shownInput, ...(req.images.length > 0 ? { images: job.images } : {}) },
    created_at: new Date(ctx.now()).toISOString(),
    deadline: req.deadline,
    webhook: req.webhook,
    webhook_events_filter: req.webhookEventsFilter,
    job: jobKey,
  });
  await ctx.predictions.create(record);
  try {
    await ctx.queue.send({ predictionId: id, jobKey });
  } catch (e) {
    const reason = `could not queue the job: ${(e as Error).message}`;
    await ctx.predictions
      .update(id, (r) => ({ ...r, status: 'failed', error: reason, completed_at: new Date(ctx.now()).toISOString() }))
      .catch(() => undefined);
    throw new ApiError(503, 'queue_unavailable', reason);
  }
  return { record, job };
}

/**
 * Which image an ImageInputError is about (`images[k]`): the processor decodes them together and
 * does not say. Only on this error path: each is decoded alone until one fails the same way.
 */
async function culprit(e: ImageInputError, images: Uint8Array[], maxPixels: number): Promise<string> {
  if (e.code !== 'UNDECODABLE' && e.code !== 'TOO_LARGE' && e.code !== 'EMPTY_INPUT') return 'images';
  if (images.length === 1) return 'images[0]';
  for (const [k, bytes] of images.entries()) {
    try {
      await decodeImage(bytes, { limitInputPixels: maxPixels });
    } catch (again) {
      if (again instanceof ImageInputError && again.code === e.code) return `images[${k}]`;
    }
  }
  return 'images';
}

async function checkWebhook(url: string, ctx: ApiContext, param: string): Promise<void> {
  try {
    await checkUrlResolves(url, ctx.addressPolicy);
  } catch (e) {
    if (e instanceof AddressRefusedError) throw new ApiError(422, 'webhook_refused', `webhook refused: ${e.message}`, param);
    throw e;
  }
}

/** Cancel-After: Go-style durations ("90s", "5m", "1h30m", "250ms") or bare seconds; → the deadline. */
export function parseCancelAfter(value: string, now: number, maxSeconds: number): string {
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let seconds = 0;
  if (/^\d+(\.\d+)?$/.test(value)) seconds = Number(value);
  else {
    const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) {
      throw new ApiError(400, 'invalid_request', `Cancel-After must be a duration like 30s, 5m or 1h30m, got "${value}"`, 'Cancel-After');
    }
    for (const [, n, u] of parts) seconds += Number(n) * unit[u];
  }
  if (!(seconds > 0 && seconds <= maxSeconds)) {
    throw new ApiError(422, 'invalid_value', `Cancel-After must be more than 0 and at most ${maxSeconds} s, got ${seconds} s`, 'Cancel-After');
  }
  return new Date(now + seconds * 1000).toISOString();
}
