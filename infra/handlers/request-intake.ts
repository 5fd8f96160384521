import { createHash } from 'node:crypto';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { createS3Client, s3SettingsFromEnv } from '../../contract/s3.ts';
import { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { createApp } from '../../functions/api/app.ts';
import { ENV, EVENTS, KEYS } from '../config.ts';
import { apiDepsFromEnv } from '../../functions/api/deps-from-env.ts';
import { eventBridgePublisher, type Publish } from './event-publisher.ts';
import { modelFilesDir } from './model-files.ts';
import { candidateKeys, isS3ObjectCreated, type S3ObjectCreatedEvent } from './s3-object-event.ts';

/**
 * The event-driven entry: a prediction request put under requests/ in the bucket, or sent as a
 * "Prediction Requested" event to the service's bus, becomes a prediction exactly as
 * POST /v1/predictions makes one (the same app, in process: same validation, preprocessing,
 * idempotency and queueing). The outcome is published: "Prediction Accepted" with the prediction's
 * id and URLs, or "Prediction Rejected" with the API's error; either names the request it answers.
 * Retried deliveries of the same object version or event make no second prediction (Idempotency-Key).
 */

/** What a "Prediction Requested" event carries. */
export interface PredictionRequestedDetail {
  /** The body of POST /v1/predictions: {input, webhook?, webhook_events_filter?}. */
  request: unknown;
  /** The same key twice makes one prediction; default: the event's id. */
  idempotency_key?: string;
  /** Cancel-After, e.g. "10m". */
  cancel_after?: string;
}

export interface PredictionRequestedEvent {
  id: string;
  source: string;
  'detail-type': typeof EVENTS.requested;
  detail: PredictionRequestedDetail;
}

/** Which request an outcome answers. */
export type RequestOrigin = { bucket: string; key: string } | { event_id: string; source: string };

export type IntakeOutcome =
  | { outcome: 'accepted'; request: RequestOrigin; prediction: { id: string; status: string; urls?: unknown } }
  | { outcome: 'rejected'; request: RequestOrigin; http_status: number; error: unknown }
  | { outcome: 'ignored'; reason: string };

export interface IntakeDeps {
  /** The API app (createApp); only POST /v1/predictions is called. */
  app: { request(input: Request): Response | Promise<Response> };
  /** The data bucket, where requests/ objects are read. */
  blobs: Pick<S3BlobStore, 'getWithEtag'>;
  publish: Publish;
  /** The API's public base URL: the prediction URLs in "Prediction Accepted" point there. */
  apiOrigin: string;
}

interface Submission {
  origin: RequestOrigin;
  body: unknown;
  idempotencyKey: string;
  cancelAfter?: string;
}

export async function takeRequest(event: S3ObjectCreatedEvent | PredictionRequestedEvent, deps: IntakeDeps): Promise<IntakeOutcome> {
  const submission = isS3ObjectCreated(event) ? await fromObject(event, deps) : fromEvent(event);
  if ('outcome' in submission) {
    if (submission.outcome === 'rejected') await deps.publish([{ detailType: EVENTS.rejected, detail: submission }]);
    return submission;
  }
  const response = await deps.app.request(
    new Request(`${deps.apiOrigin}/v1/predictions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'idempotency-key': submission.idempotencyKey,
        ...(submission.cancelAfter !== undefined ? { 'cancel-after': submission.cancelAfter } : {}),
      },
      body: JSON.stringify(submission.body),
    }),
  );
  const payload = (await response.json().catch(() => null)) as Record<string, unknown> | null;
  // 5xx (S3 or SQS trouble) and 409 (the same request still in flight): throw, so the delivery is retried.
  if (response.status >= 500 || response.status === 409) {
    throw new Error(`POST /v1/predictions answered ${response.status}: ${JSON.stringify(payload?.error ?? payload)}`);
  }
  if (response.status === 200 || response.status === 201 || response.status === 202) {
    const prediction = { id: String(payload?.id), status: String(payload?.status), urls: payload?.urls };
    const outcome: IntakeOutcome = { outcome: 'accepted', request: submission.origin, prediction };
    await deps.publish([{ detailType: EVENTS.accepted, detail: outcome }]);
    return outcome;
  }
  const outcome: IntakeOutcome = { outcome: 'rejected', request: submission.origin, http_status: response.status, error: payload?.error ?? payload };
  await deps.publish([{ detailType: EVENTS.rejected, detail: outcome }]);
  return outcome;
}

/** A requests/ object: its JSON is the POST body; its key and version (ETag) make the idempotency key. */
async function fromObject(event: S3ObjectCreatedEvent, deps: IntakeDeps): Promise<Submission | IntakeOutcome> {
  const { bucket, object } = event.detail;
  if (!object.key.startsWith(KEYS.requests)) return { outcome: 'ignored', reason: `${object.key} is not under ${KEYS.requests}` };
  let found: { key: string; body: Uint8Array; etag: string } | undefined;
  for (const key of candidateKeys(object.key)) {
    const blob = await deps.blobs.getWithEtag(key);
    if (blob) {
      found = { key, body: blob.body, etag: blob.etag };
      break;
    }
  }
  if (!found) return { outcome: 'ignored', reason: `${object.key} no longer exists` };
  const origin = { bucket: bucket.name, key: found.key };
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(found.body));
  } catch (e) {
    return { outcome: 'rejected', request: origin, http_status: 400, error: { code: 'invalid_json', message: `the request object is not JSON: ${(e as Error).message}` } };
  }
  const version = (object.etag ?? found.etag).replace(/"/g, '');
  const keyHash = createHash('sha256').update(`${bucket.name}/${found.key}`).digest('hex');
  return { origin, body, idempotencyKey: `s3:${keyHash}:${version}` };
}

function fromEvent(event: PredictionRequestedEvent): Submission | IntakeOutcome {
  const origin = { event_id: event.id, source: event.source };
  const detail = event.detail as Partial<PredictionRequestedDetail> | undefined;
  if (!detail || typeof detail !== 'object' || detail.request === undefined) {
    return { outcome: 'rejected', request: origin, http_status: 400, error: { code: 'invalid_request', message: 'the event detail needs a "request" (the body of POST /v1/predictions)' } };
  }
  const own = detail.idempotency_key;
  return {
    origin,
    body: detail.request,
    idempotencyKey: own !== undefined ? `event:${own}` : `event-id:${event.id}`,
    ...(detail.cancel_after !== undefined ? { cancelAfter: detail.cancel_after } : {}),
  };
}

/**
 * The intake's dependencies from the environment: the API's (functions/api/deps-from-env.ts, the
 * model's files fetched as for the API Lambda) with keys off, because the
 * caller was already authorized by IAM to write the bucket or the bus; its predictions belong to the
 * owner "local", like every caller's in the iam auth mode.
 */
export async function intakeDepsFromEnv(env: NodeJS.ProcessEnv = process.env, opts: { modelCacheDir?: string } = {}): Promise<IntakeDeps> {
  const s3 = s3SettingsFromEnv(env);
  const blobs = new S3BlobStore(createS3Client(s3), s3.bucket);
  const modelDir = await modelFilesDir(env[ENV.model] ?? '', blobs.s3, opts.modelCacheDir);
  const api = await apiDepsFromEnv({ ...env, [ENV.model]: modelDir });
  const bus = env[ENV.eventBus];
  if (!bus) throw new Error(`${ENV.eventBus} is not set`);
  return {
    app: createApp({ ...api, apiKeys: [] }),
    blobs,
    publish: eventBridgePublisher(new EventBridgeClient({ region: s3.region }), bus),
    apiOrigin: (env[ENV.apiUrl] ?? 'https://api.invalid').replace(/\/+$/, ''),
  };
}

let deps: Promise<IntakeDeps> | undefined;

/** Lambda entry: the target of the requests/ object rule and of the "Prediction Requested" rule. */
export async function handler(event: S3ObjectCreatedEvent | PredictionRequestedEvent): Promise<IntakeOutcome> {
  // A failed start (the model files unreachable) is not cached: the next invocation tries again.
  deps ??= intakeDepsFromEnv().catch((e: unknown) => {
    deps = undefined;
    throw e;
  });
  const outcome = await takeRequest(event, await deps);
  console.log(JSON.stringify(outcome));
  return outcome;
}
