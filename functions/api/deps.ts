import type { JobQueue } from '../../contract/job-queue.ts';
import type { PredictionStore } from '../../contract/prediction-store.ts';
import type { S3BlobStore } from '../../contract/s3-blob-store.ts';
import type { AnoleConfig } from '../../model/config.ts';
import type { AnoleProcessor } from '../../model/preprocess/processor.ts';
import { PRODUCTION_ADDRESS_POLICY, type AddressPolicy } from '../../contract/address-policy.ts';
import type { ImageLimits } from './fetch-image.ts';

/** Everything the API works with, injected: the same app runs on Lambda, locally and in tests. */
export interface ApiDeps {
  config: AnoleConfig;
  /** Tokenizer + image processor (no weights: the API never runs the model). */
  processor: AnoleProcessor;
  store: Pick<S3BlobStore, 'get' | 'put' | 'head' | 'getWithEtag' | 'putIfAbsent' | 'putIfMatch' | 'delete' | 'presignGet' | 'presignPut'>;
  predictions: Pick<PredictionStore, 'create' | 'get' | 'update' | 'listByOwner' | 'readEvents'>;
  queue: Pick<JobQueue, 'send'>;
  /**
   * Tokens a prediction may use (prompt + max_new_tokens): the model's context, or less when the
   * workers' cache slots are shorter (ANOLE_MAX_CONTEXT, set for both): a job that could never fit
   * is refused here, not failed later.
   */
  contextLength?: number;
  /** The served model's name, `owner/name` (GET /v1/models, Replicate's model routes); default DEFAULT_MODEL_ID. */
  modelId?: string;
  /** Bearer keys; none (the local default) turns authentication off. */
  apiKeys?: readonly string[];
  /** Where image URLs and webhooks may point; production by default (https, public addresses only). */
  addressPolicy?: AddressPolicy;
  limits?: Partial<ApiLimits>;
  /** ms since the epoch; tests move time. */
  now?: () => number;
  /** Aborted when the server stops: waits answer with the prediction as it stands, streams end with a `reconnect` event. */
  shutdown?: AbortSignal;
}

export interface ApiLimits {
  /** A request body; Lambda's own limit for a buffered request is 6 MB, so larger images go through uploads. */
  maxBodyBytes: number;
  image: ImageLimits;
  /** Prefer: wait=N is capped here (Replicate's cap). */
  maxWaitSeconds: number;
  /** How long the OpenAI-compatible endpoints wait for a result (their clients have no async mode). */
  openaiWaitSeconds: number;
  /** Presigned output URLs (OpenAI's are good for 60 min). */
  outputUrlSeconds: number;
  uploadUrlSeconds: number;
  /** The furthest Cancel-After accepted. */
  maxCancelAfterSeconds: number;
  idempotencyTtlMs: number;
  /**
   * An in-flight idempotent request that has not made its prediction yet is presumed dead after this
   * (longer than any preparation: image fetches, decoding, tokenizing); once made, it holds the key for
   * its Prefer: wait and a margin only.
   */
  idempotencyLeaseMs: number;
  /** How often waits and streams look at the store. */
  pollMs: number;
  /** An event stream ends after this (under Lambda's 15 minutes); the client resumes with Last-Event-ID. */
  maxStreamSeconds: number;
}

export const DEFAULT_MODEL_ID = 'anole/anole-7b';

export const DEFAULT_LIMITS: ApiLimits = {
  maxBodyBytes: 6 * 1024 * 1024,
  image: { maxBytes: 20 * 1024 * 1024, maxPixels: 4096 * 4096, timeoutMs: 10_000, maxRedirects: 3 },
  maxWaitSeconds: 60,
  openaiWaitSeconds: 300,
  outputUrlSeconds: 3600,
  uploadUrlSeconds: 900,
  maxCancelAfterSeconds: 24 * 3600,
  idempotencyTtlMs: 24 * 3600 * 1000,
  idempotencyLeaseMs: 2 * 60 * 1000,
  pollMs: 200,
  maxStreamSeconds: 840,
};

/** The deps with every default filled in. */
export interface ApiContext extends Required<Omit<ApiDeps, 'limits'>> {
  limits: ApiLimits;
}

export function withDefaults(deps: ApiDeps): ApiContext {
  return {
    ...deps,
    apiKeys: deps.apiKeys ?? [],
    modelId: deps.modelId ?? DEFAULT_MODEL_ID,
    addressPolicy: deps.addressPolicy ?? PRODUCTION_ADDRESS_POLICY,
    contextLength: Math.min(deps.contextLength ?? Infinity, deps.config.maxPositionEmbeddings),
    limits: { ...DEFAULT_LIMITS, ...deps.limits, image: { ...DEFAULT_LIMITS.image, ...deps.limits?.image } },
    now: deps.now ?? Date.now,
    shutdown: deps.shutdown ?? new AbortController().signal,
  };
}
