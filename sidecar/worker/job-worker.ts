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
import { cacheRowsPerSequence } from '../../contract/generation-request.ts';
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
  /** Jobs per receive (and per generate call): every sequence of every job shares the engine's steps. */
  maxBatch?: number;
  /** After the first message, how long to wait for more to fill the batch (default 0: a later job joins the running batch). */
  batchWindowMs?: number;
  /**
   * Jobs running at once (default: no limit but the cache). The worker keeps receiving while jobs run, as
   * long as the jobs it holds leave a cache slot free (continuous batching); 1 runs one batch at a time.
   */
  maxJobs?: number;
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
 * The sidecar's long-running loop: receive jobs, run them on the loaded model, record each result
 * exactly once.
 *
 *   receive ≤ maxBatch messages (long poll, then a short window for more) whenever the jobs in hand
 *     leave room: a free cache slot (the engine's calls overlap: continuous batching, a job that does
 *     not fit waits in the engine's queue, its message kept hidden by the heartbeat)
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
  /**
   * Cache rows each claimed job holds, by message id (engine v2 counts slots in rows); freed at the
   * job's `done`.
   */
  private readonly holding = new Map<string, number>();
  private readonly batches = new Set<Promise<void>>();
  /** The deliveries in hand (until their results are recorded) by message id, and how often each message came back to this worker while in hand. */
  private readonly running = new Map<string, Delivery>();
  private readonly redelivered = new Map<string, number>();
  private roomChanged = signal();
  private readonly slots: number;
  /** [time, tokens] of the jobs that ended in the last minute (tokens per second). */
  private readonly recent: [number, number][] = [];
  private readonly started = Date.now();

  constructor(
    private readonly deps: JobWorkerDeps,
    opts: WorkerOptions = {},
  ) {
    const visibilitySeconds = opts.visibilitySeconds ?? 60;
    this.slots = deps.model.generator.capacity.slots;
    this.opts = {
      maxBatch: 4,
      batchWindowMs: 0,
      maxJobs: Infinity,
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
      inHand: (id) => [...this.running.values()].some((d) => d.job.id === id),
      notify: webhookNotifier({ webhooks: deps.webhooks, present: deps.present ?? ((r) => presentRecord(r, deps.store)), log }),
      log,
    };
    this.endings = new DeliveryEndings(this.ctx);
  }

  state(): WorkerState {
    return this.current;
  }

  metrics(): WorkerMetrics {
    const rows = this.rowsHeld();
    const now = Date.now();
    while (this.recent.length > 0 && this.recent[0][0] < now - 60_000) this.recent.shift();
    const window = Math.min(60, Math.max(1, (now - this.started) / 1000));
    const tokensPerSecond = this.recent.reduce((n, [, t]) => n + t, 0) / window;
    return structuredClone({ ...this.counters, cacheSlots: this.slots, rowsHeld: rows, rowsWaiting: Math.max(0, rows - this.slots), tokensPerSecond });
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
      const room = this.room();
      if (room === 0) {
        await Promise.race([this.roomChanged.promise, this.stopped()]);
        continue;
      }
      let messages: ReceivedJob[];
      try {
        messages = await this.receiveBatch(Math.min(room, this.opts.maxBatch));
      } catch (e) {
        if (this.stopReceiving.signal.aborted) break;
        this.log(`receive failed: ${(e as Error).message}`);
        await sleep(1000);
        continue;
      }
      if (messages.length === 0) continue;
      // claimed before the next receive, so that it sees the rows these jobs hold
      const claims = (await Promise.all(this.fresh(messages).map((m) => claimDelivery(m, this.ctx, this.endings)))).filter((c): c is Delivery => c !== undefined);
      if (claims.length === 0) continue;
      for (const c of claims) {
        this.holding.set(c.msg.messageId, c.job.n * cacheRowsPerSequence(c.job));
        this.running.set(c.msg.messageId, c);
      }
      // batches overlap: the engine batches their sequences with whatever runs
      const batch = this.process(claims).finally(() => this.batches.delete(batch));
      this.batches.add(batch);
      if (this.opts.maxJobs === 1) await batch; // one batch at a time, as asked
    }
    await Promise.all(this.batches);
  }

  /**
   * Messages of jobs this worker runs now come back when a heartbeat was late (SQS hid them too
   * briefly): the delivery in hand takes the new receipt handle (SQS honours only the latest for
   * delete and visibility) and runs on; such a receive is not an attempt, so later deliveries of that
   * message count without it.
   */
  private fresh(messages: ReceivedJob[]): ReceivedJob[] {
    return messages.flatMap((m) => {
      const inHand = this.running.get(m.messageId);
      if (inHand) {
        inHand.msg.receiptHandle = m.receiptHandle;
        this.redelivered.set(m.messageId, (this.redelivered.get(m.messageId) ?? 0) + 1);
        this.log(`job ${inHand.job.id}: its message came back while it runs (a late heartbeat); kept`);
        return [];
      }
      const extra = this.redelivered.get(m.messageId) ?? 0;
      return [extra ? { ...m, receiveCount: m.receiveCount - extra } : m];
    });
  }

  /** How many more jobs to receive now: one per free cache slot, at most maxJobs in all; 0 = wait. */
  private room(): number {
    const jobs = this.opts.maxJobs - this.holding.size;
    const rows = this.rowsHeld();
    return Math.max(0, Math.min(jobs, this.slots - rows));
  }

  private rowsHeld(): number {
    return [...this.holding.values()].reduce((n, r) => n + r, 0);
  }

  private stopped(): Promise<void> {
    const signal = this.stopReceiving.signal;
    return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
  }

  /** A job left (its result is being recorded, or it failed): room for others. */
  private leave(messageId: string): void {
    if (!this.holding.delete(messageId)) return;
    this.roomChanged.resolve();
    this.roomChanged = signal();
  }

  private async receiveBatch(max: number): Promise<ReceivedJob[]> {
    const { queue } = this.deps;
    const { waitSeconds, visibilitySeconds, batchWindowMs } = this.opts;
    const signal = this.stopReceiving.signal;
    // long-poll for one: local-aws-sqs holds a long poll until it has all `max` messages (AWS answers
    // as soon as it has any), so asking for one answers at once; the window then fills the batch
    const batch = await queue.receive(1, waitSeconds, { visibilitySeconds, signal });
    const until = Date.now() + batchWindowMs;
    while (batch.length > 0 && batch.length < max && !signal.aborted) {
      const more = await queue.receive(max - batch.length, 0, { visibilitySeconds });
      batch.push(...more);
      if (more.length > 0) continue;
      if (Date.now() >= until) break;
      await sleep(Math.min(25, until - Date.now()));
    }
    return batch;
  }

  private async process(claims: Delivery[]): Promise<void> {
    this.counters.batches++;
    this.counters.inFlight += claims.length;
    const heartbeat = startHeartbeat(claims, this.ctx, this.opts);
    try {
      await this.runBatch(claims);
    } finally {
      for (const c of claims) {
        this.leave(c.msg.messageId);
        this.running.delete(c.msg.messageId);
      }
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
      for await (const [jobId, update] of events) {
        const c = byId.get(jobId)!;
        if (update.type === 'event') {
          const { event, preview, output } = update;
          const previewKey = event.type === 'image_rows' ? event.preview_key : undefined;
          c.events.push(event, preview && previewKey ? { key: previewKey, body: preview, contentType: 'image/png' } : undefined);
          if (output) {
            c.output = output;
            void notifyOutput(c, this.ctx);
          }
        } else {
          // recorded in the background: the other jobs of the batch keep generating meanwhile
          this.endings.settle(c, this.endings.finish(c, update.result));
          this.recent.push([Date.now(), update.result.metrics.generatedTokens]);
          this.leave(c.msg.messageId);
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

/** A promise and the function that resolves it (Promise.withResolvers, which Node 20 lacks). */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
