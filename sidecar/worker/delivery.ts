import type { GenerationJob, OutputPart } from '../../contract/job.ts';
import type { JobQueue, ReceivedJob } from '../../contract/job-queue.ts';
import type { PredictionRecord } from '../../contract/prediction.ts';
import type { PredictionStore } from '../../contract/prediction-store.ts';
import type { S3BlobStore } from '../../contract/s3-blob-store.ts';
import type { EventWriter } from './event-writer.ts';
import type { WorkerMetrics } from './health-server.ts';
import type { JobLeases, Lease } from './job-lease.ts';

/** Why a running job was told to stop. */
export type StopReason = 'canceled' | 'deadline' | 'lease_lost';

/** A received message whose job is running here: what its lifecycle writes and its heartbeat need. */
export interface Delivery {
  msg: ReceivedJob;
  job: GenerationJob;
  lease: Lease;
  abort: AbortController;
  stopReason?: StopReason;
  events: EventWriter;
  /** Images finished so far (numbers the `output` webhooks). */
  images: number;
  /** The output so far, per sequence, as the job runner last reported it (what an `output` webhook shows). */
  output: OutputPart[][];
  /** Set once the job's result is being recorded. */
  finishing?: Promise<void>;
}

export type WebhookEvent = 'start' | 'output' | 'completed';

/** What a delivery's lifecycle works with, made once by the worker. */
export interface DeliveryContext {
  workerId: string;
  blobs: S3BlobStore;
  predictions: PredictionStore;
  queue: JobQueue;
  leases: JobLeases;
  /** The worker's counters, updated in place. */
  metrics: WorkerMetrics;
  /** Deliveries that may run a job (WorkerOptions.maxAttempts). */
  maxAttempts: number;
  visibilitySeconds: number;
  /** Whether this worker runs the prediction now (a delivery of a job in hand must not take its lease). */
  inHand(predictionId: string): boolean;
  /** Sends the prediction's webhook for `event`, if it asked for one (in the background). */
  notify(record: PredictionRecord, event: WebhookEvent, index?: number): void;
  log(message: string): void;
}

/** Tells a running job to stop at the engine's next chunk boundary; the first reason holds. */
export function stopDelivery(d: Delivery, reason: StopReason): void {
  if (d.abort.signal.aborted) return;
  d.stopReason = reason;
  d.abort.abort();
}
