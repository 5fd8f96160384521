import type { PredictionRecord } from '../../contract/prediction.ts';
import { s3SettingsFromEnv, type S3Settings } from '../../contract/s3-settings.ts';
import { queueSettingsFromEnv, type QueueSettings } from '../../contract/sqs-settings.ts';
import { addressPolicyFromEnv } from '../../contract/address-policy.ts';
import type { WebhookSenderOptions } from './webhooks.ts';
import type { WorkerOptions } from './job-worker.ts';
import type { CacheSettings } from '../engine/slot-capacity.ts';

// Settings only, no SDK or server: the worker reads and checks its environment first, then starts
// loading the model, then imports the rest (sidecar/worker/main.ts).

/**
 * Where the worker's model is (a directory, a bundle, `s3://bucket/prefix/` or a Hub repo id): ANOLE_MODEL, with no
 * default, so a worker started without it refuses to start instead of serving a random-weight model.
 */
export function modelLocationFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const location = env.ANOLE_MODEL;
  if (!location) {
    throw new Error('ANOLE_MODEL is not set: the worker serves only the model it is given (a directory, a bundle, s3://bucket/prefix/ or a Hub repo id); `npx anole serve` is the one that defaults to the tiny random model');
  }
  return location;
}

export interface WorkerConfig {
  modelDir: string;
  s3: S3Settings;
  queue: QueueSettings;
  /** Standard Webhooks secret (`whsec_…`); a fresh one is made when absent (say it to the user). */
  webhookSecret?: string;
  webhook?: Omit<WebhookSenderOptions, 'secret'>;
  /** The health/metrics server; port 0 = any free one. */
  health?: { port?: number; hostname?: string };
  worker?: WorkerOptions;
  present?: (record: PredictionRecord) => Promise<unknown>;
  intraOpNumThreads?: number;
  /** Engine v2's KV cache: its budget, tokens per slot, slots at most, prefill chunk. */
  cache?: CacheSettings;
  /** Seconds between CloudWatch embedded-metric lines on stdout (metrics-log.ts); none when unset. */
  metricsLogSeconds?: number;
}

/**
 * The worker's settings from the environment: the S3 and queue variables (contract/s3-settings.ts, sqs-settings.ts),
 * ANOLE_WEBHOOK_SECRET, ANOLE_HEALTH_PORT (default 8788), ANOLE_HEALTH_HOST (default 127.0.0.1),
 * ANOLE_BATCH_SIZE, ANOLE_BATCH_WINDOW_MS, ANOLE_VISIBILITY_SECONDS, ANOLE_WAIT_SECONDS,
 * ANOLE_CANCEL_POLL_MS, ANOLE_MAX_ATTEMPTS, ANOLE_CHUNK_SIZE, ANOLE_PREVIEW_EVERY_ROWS,
 * ANOLE_WEBHOOK_MAX_ATTEMPTS, ANOLE_WEBHOOK_BASE_DELAY_MS, ANOLE_THREADS, the cache's ANOLE_KV_CACHE_MIB,
 * ANOLE_MAX_CONTEXT, ANOLE_MAX_SLOTS, ANOLE_PREFILL_CHUNK (slot-capacity.ts), ANOLE_METRICS_LOG_SECONDS; webhook destinations follow
 * the API's address policy (ANOLE_ALLOW_HTTP_URLS, ANOLE_ALLOWED_ADDRESSES: https to public addresses only by default).
 */
export function workerConfigFromEnv(modelDir: string, env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const int = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${v}`);
    return n;
  };
  const log = (m: string) => console.error(m);
  return {
    modelDir,
    s3: s3SettingsFromEnv(env),
    queue: queueSettingsFromEnv(env),
    webhookSecret: env.ANOLE_WEBHOOK_SECRET || undefined,
    webhook: dropUndefined({ maxAttempts: int('ANOLE_WEBHOOK_MAX_ATTEMPTS'), baseDelayMs: int('ANOLE_WEBHOOK_BASE_DELAY_MS'), policy: addressPolicyFromEnv(env) }),
    health: { port: int('ANOLE_HEALTH_PORT') ?? 8788, hostname: env.ANOLE_HEALTH_HOST || '127.0.0.1' },
    worker: dropUndefined({
      maxBatch: int('ANOLE_BATCH_SIZE'),
      batchWindowMs: int('ANOLE_BATCH_WINDOW_MS'),
      visibilitySeconds: int('ANOLE_VISIBILITY_SECONDS'),
      waitSeconds: int('ANOLE_WAIT_SECONDS'),
      cancelPollMs: int('ANOLE_CANCEL_POLL_MS'),
      maxAttempts: int('ANOLE_MAX_ATTEMPTS'),
      chunkSize: int('ANOLE_CHUNK_SIZE'),
      previewEveryRows: int('ANOLE_PREVIEW_EVERY_ROWS'),
      log,
    }),
    intraOpNumThreads: int('ANOLE_THREADS'),
    metricsLogSeconds: int('ANOLE_METRICS_LOG_SECONDS'),
    cache: dropUndefined({
      cacheBytes: mib(int('ANOLE_KV_CACHE_MIB')),
      cacheContext: int('ANOLE_MAX_CONTEXT'),
      maxSlots: int('ANOLE_MAX_SLOTS'),
      prefillChunk: int('ANOLE_PREFILL_CHUNK'),
    }),
  };
}

const mib = (n: number | undefined) => (n === undefined ? undefined : n * 2 ** 20);

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
