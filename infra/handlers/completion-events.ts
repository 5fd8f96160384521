import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { TERMINAL, type PredictionRecord } from '../../contract/prediction.ts';
import { PredictionStore } from '../../contract/prediction-store.ts';
import { createS3Client, s3SettingsFromEnv } from '../../contract/s3.ts';
import { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { ENV, EVENTS } from '../config.ts';
import { eventBridgePublisher, type Publish, type ServiceEvent } from './event-publisher.ts';
import { sameEtag, type S3ObjectCreatedEvent } from './s3-object-event.ts';

/**
 * "Prediction Completed" on the service's bus, whoever finished the prediction (worker, cancel,
 * abort): every status write raises an S3 event (predictions/{id}/status.json), and the write that
 * made the record terminal becomes one EventBridge event. The worker needs no code for this.
 */
export interface CompletionDeps {
  predictions: Pick<PredictionStore, 'get'>;
  bucket: string;
  publish: Publish;
}

export type CompletionOutcome = 'published' | 'not-terminal' | 'superseded' | 'not-a-status' | 'gone';

/** predictions/{id}/status.json → id (undefined for any other key). */
export function predictionIdOfStatusKey(key: string): string | undefined {
  return /^predictions\/([^/]+)\/status\.json$/.exec(key)?.[1];
}

/** The event's detail: the record as a consumer needs it (image parts carry keys in `bucket`), without the input. */
export function completedEvent(record: PredictionRecord, bucket: string): ServiceEvent {
  const { id, owner, status, output, error, metrics, created_at, started_at, completed_at } = record;
  return { detailType: EVENTS.completed, detail: { id, owner, status, output, error, metrics, created_at, started_at, completed_at, bucket } };
}

/**
 * Publishes when the write this event announces is the terminal record. A write that a later one
 * has already replaced is skipped (the later write has its own event), so each prediction completes
 * once, give or take the at-least-once delivery of S3 and EventBridge (consumers dedupe on id).
 */
export async function announceCompletion(event: S3ObjectCreatedEvent, deps: CompletionDeps): Promise<CompletionOutcome> {
  const id = predictionIdOfStatusKey(event.detail.object.key);
  if (id === undefined) return 'not-a-status';
  const current = await deps.predictions.get(id);
  if (!current) return 'gone';
  if (event.detail.object.etag !== undefined && !sameEtag(current.etag, event.detail.object.etag)) return 'superseded';
  if (!TERMINAL.has(current.value.status)) return 'not-terminal';
  await deps.publish([completedEvent(current.value, deps.bucket)]);
  return 'published';
}

function depsFromEnv(env: NodeJS.ProcessEnv): CompletionDeps {
  const s3 = s3SettingsFromEnv(env);
  const bus = env[ENV.eventBus];
  if (!bus) throw new Error(`${ENV.eventBus} is not set`);
  return {
    predictions: new PredictionStore(new S3BlobStore(createS3Client(s3), s3.bucket)),
    bucket: s3.bucket,
    publish: eventBridgePublisher(new EventBridgeClient({ region: s3.region }), bus),
  };
}

let deps: CompletionDeps | undefined;

/** Lambda entry: the target of the rule on status.json writes. */
export async function handler(event: S3ObjectCreatedEvent): Promise<CompletionOutcome> {
  deps ??= depsFromEnv(process.env);
  const outcome = await announceCompletion(event, deps);
  console.log(JSON.stringify({ key: event.detail.object.key, outcome }));
  return outcome;
}
