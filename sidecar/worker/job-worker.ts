import { randomUUID } from 'node:crypto';
import type { JobQueue, ReceivedJob } from '../../contract/job-queue.ts';
import type { PredictionRecord } from '../../contract/prediction.ts';
import { PredictionStore } from '../../contract/prediction-store.ts';
import type { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { isTransientError } from '../../contract/transient-error.ts';
import { claimDelivery } from './claim-delivery.ts';
import type { Delivery, DeliveryContext } from './delivery.ts';
import { DeliveryEndings } from './delivery-endings.ts';
import { emptyMetrics, type HealthSource, type WorkerMetrics, type WorkerState } from './health-server.ts';
import { startHeartbeat } from './heartbeat.ts';
import { JobLeases } from './job-lease.ts';
import { notifyOutput, presentRecord, webhookNotifier } from './prediction-webhooks.ts';
import type { LoadedModel } from './load-model.ts';
import { runJobs } from './run-jobs.ts';
import type { WebhookSender } from './webhooks.ts';

export interface JobWorkerDeps {
  model: LoadedModel;
  /** Where everything is kept: the records and their events, the jobs, their images and outputs, the leases. */
  store: S3BlobStore;
  queue: JobQueue;
  webhooks?: WebhookSender;
  /** A webhook's body: the prediction as the API shows it (default: the stored record, image keys as presigned URLs). */
  present?: (record: PredictionRecord) => Promise<unknown>;
}

export interface WorkerOptions {
  /** Jobs per generate call: every sequence of every job shares the engine's chunks. */
  maxBatch?: number;
  /** After the first message, how long to wait for more to fill the batch. */
  batchWindowMs?: number;
  /** SQS long-poll wait while idle (at most 20). */
  waitSeconds?: number;
  /** How long a received message stays hidden; the heartbeat keeps pushing it out while the job runs. */
  visibilitySeconds?: number;
  /** How often running jobs' messages and leases are extended (default: a third of the visibility timeout). */
  heartbeatMs?: number;
  /** How often running jobs' records are read for cancel_requested and the deadline. */
  cancelPollMs?: number;
  /**
   * Deliveries that may run a job: a job that keeps hitting storage errors is failed on the last,
   * and a later delivery (every earlier run died with its worker) fails it without running. Keep
   * the queue's maxReceiveCount above it, so that the worker sees such a job before the
   * dead-letter queue takes it and its record would stay unfinished.
   */
  maxAttempts?: number;
  chunkSize?: number;
  previewEveryRows?: number;
  workerId?: string;
  log?: (message: string) => void;
}

/**
 * The sidecar's long-running loop: receive jobs, run them in batches on the loaded model, record
 * each result exactly once.
 *
 *   receive ≤ maxBatch messages (long poll, then a short window for more)
 *   claim each (claim-delivery.ts): read its record; finished → delete the message (a duplicate
 *     delivery); deadline passed → aborted; cancel asked → canceled; take the job's lease (another
 *     live worker has it → leave the message); starting → processing (conditional write)
 *   runJobs on the batch, events appended in the background; meanwhile a heartbeat (heartbeat.ts)
 *     extends the messages and leases and polls the records for cancel_requested / the deadline
 *   per job at `done` (delivery-endings.ts): flush its events, then one conditional write
 *     processing → succeeded | canceled with the output; only then delete the message
 *
 * Failures: an error from the job (bad input, the engine) fails that job (status failed, message
 * deleted); a storage error leaves the message to come back (a job is never recorded as succeeded
 * unless all of its PNGs and events were stored first); on the last allowed delivery it fails the
 * job if it can still write, else SQS moves the message to the dead-letter queue.
 */
export class JobWorker implements HealthSource {
  readonly id: string;
  private readonly counters: WorkerMetrics = emptyMetrics();
  private readonly opts: Required<Omit<WorkerOptions, 'chunkSize' | 'log' | 'workerId'>> & Pick<WorkerOptions, 'chunkSize' | 'log'>;
  private readonly ctx: DeliveryContext;
  private readonly endings: DeliveryEndings;
  private current: WorkerState = 'starting';
  private readonly stopReceiving = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly deps: JobWorkerDeps,
    opts: WorkerOptions = {},
  ) {
    const visibilitySeconds = opts.visibilitySeconds ?? 60;
    this.opts = {
      maxBatch: 4,
      batchWindowMs: 100,
      waitSeconds: 10,
      visibilitySeconds,
      heartbeatMs: (visibilitySeconds * 1000) / 3,
      cancelPollMs: 1000,
      maxAttempts: 4, // the queues of dev/ and infra/ default to maxReceiveCount 5
      previewEveryRows: 0,
      ...opts,
    };
    this.id = opts.workerId ?? `worker-${randomUUID().slice(0, 8)}`;
    const log = (message: string) => this.log(message);
    this.ctx = {
      workerId: this.id,
      blobs: deps.store,
      predictions: new PredictionStore(deps.store),
      queue: deps.queue,
      leases: new JobLeases(deps.store, visibilitySeconds * 1000),
      metrics: this.counters,
      maxAttempts: this.opts.maxAttempts,
      visibilitySeconds,
      notify: webhookNotifier({ webhooks: deps.webhooks, present: deps.present ?? ((r) => presentRecord(r, deps.store)), log }),
      log,
    };
    this.endings = new DeliveryEndings(this.ctx);
  }

  state(): WorkerState {
    return this.current;
  }

  metrics(): WorkerMetrics {
    return structuredClone(this.counters);
  }

  /** Starts the loop; resolves when it has stopped (after drain()). */
  run(): Promise<void> {
    this.loop ??= this.receiveLoop();
    return this.loop;
  }

  /** Stops receiving, lets the batch in hand finish and its webhooks go out, then resolves. */
  async drain(): Promise<void> {
    if (this.current !== 'stopped') this.current = 'draining';
    this.stopReceiving.abort();
    await this.loop;
    await this.deps.webhooks?.idle();
    this.current = 'stopped';
  }

  private async receiveLoop(): Promise<void> {
    this.current = 'running';
    while (!this.stopReceiving.signal.aborted) {
      let messages: ReceivedJob[];
      try {
        messages = await this.receiveBatch();
      } catch (e) {
        if (this.stopReceiving.signal.aborted) break;
        this.log(`receive failed: ${(e as Error).message}`);
        await sleep(1000);
        continue;
      }
      if (messages.length > 0) await this.process(messages);
    }
  }

  private async receiveBatch(): Promise<ReceivedJob[]> {
    const { queue } = this.deps;
    const { maxBatch, waitSeconds, visibilitySeconds, batchWindowMs } = this.opts;
    const signal = this.stopReceiving.signal;
    // long-poll for one: local-aws-sqs holds a long poll until it has all `max` messages (AWS answers
    // as soon as it has any), so asking for one answers at once; the window then fills the batch
    const batch = await queue.receive(1, waitSeconds, { visibilitySeconds, signal });
    const until = Date.now() + batchWindowMs;
    while (batch.length > 0 && batch.length < maxBatch && Date.now() < until && !signal.aborted) {
      const more = await queue.receive(maxBatch - batch.length, 0, { visibilitySeconds });
      if (more.length === 0) await sleep(Math.min(25, until - Date.now()));
      batch.push(...more);
    }
    return batch;
  }

  private async process(messages: ReceivedJob[]): Promise<void> {
    const claims = (await Promise.all(messages.map((m) => claimDelivery(m, this.ctx, this.endings)))).filter((c): c is Delivery => c !== undefined);
    if (claims.length === 0) return;
    this.counters.batches++;
    this.counters.inFlight += claims.length;
    const heartbeat = startHeartbeat(claims, this.ctx, this.opts);
    try {
      await this.runBatch(claims);
    } finally {
      await heartbeat.stop();
    }
  }

  /** Runs the claimed jobs together; a job error in a batch of several reruns them one by one to find the culprit. */
  private async runBatch(claims: Delivery[]): Promise<void> {
    const byId = new Map(claims.map((c) => [c.job.id, c]));
    const signals = new Map(claims.map((c) => [c.job.id, c.abort.signal]));
    try {
      const events = runJobs(
        claims.map((c) => c.job),
        this.deps.model,
        this.deps.store,
        { chunkSize: this.opts.chunkSize, previewEveryRows: this.opts.previewEveryRows, signals },
      );
      for await (const [jobId, ev] of events) {
        const c = byId.get(jobId)!;
        switch (ev.type) {
          case 'text': {
            c.events.push({ type: 'text', sequence: ev.sequence, delta: ev.delta });
            const parts = c.partial[ev.sequence];
            const last = parts[parts.length - 1];
            if (last?.type === 'text') last.text += ev.delta;
            else parts.push({ type: 'text', text: ev.delta });
            break;
          }
          case 'image_rows': {
            // one key per preview: a later preview must not replace the one an earlier event names
            const previewKey = ev.preview ? `${c.job.outputPrefix}preview-${ev.sequence}-${ev.image}-${ev.rows}.png` : undefined;
            c.events.push(
              { type: 'image_rows', sequence: ev.sequence, image: ev.image, rows: ev.rows, total_rows: ev.totalRows, ...(previewKey ? { preview_key: previewKey } : {}) },
              ev.preview && previewKey ? { key: previewKey, body: ev.preview, contentType: 'image/png' } : undefined,
            );
            break;
          }
          case 'image':
            c.events.push({ type: 'image', sequence: ev.sequence, image: ev.image, key: ev.key, width: ev.width, height: ev.height });
            c.partial[ev.sequence].push({ type: 'image', key: ev.key, width: ev.width, height: ev.height });
            void notifyOutput(c, this.ctx);
            break;
          case 'done':
            // recorded in the background: the other jobs of the batch keep generating meanwhile
            this.endings.settle(c, this.endings.finish(c, ev.result));
            break;
        }
        if (c.events.failed && !c.abort.signal.aborted) c.abort.abort(); // storage is failing: stop spending compute on it
      }
    } catch (e) {
      const unfinished = claims.filter((c) => !c.finishing);
      if (unfinished.length > 1 && !isTransientError(e)) {
        this.log(`batch of ${claims.length} failed (${(e as Error).message}): running its jobs one by one`);
        for (const c of unfinished) {
          c.events.push({ type: 'status', status: 'processing' });
          await this.runBatch([c]);
        }
      } else {
        for (const c of unfinished) this.endings.settle(c, this.endings.giveUp(c, e));
      }
    }
    await Promise.all(claims.map((c) => c.finishing));
  }

  private log(message: string): void {
    this.opts.log?.(`[${this.id}] ${message}`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
