import { randomUUID } from 'node:crypto';
import type { GenerationJob, JobResult, OutputPart } from '../../contract/job.ts';
import type { JobQueue, ReceivedJob } from '../../contract/job-queue.ts';
import { TERMINAL, type PredictionRecord, type PredictionStatus } from '../../contract/prediction.ts';
import type { PredictionStore } from '../../contract/prediction-store.ts';
import type { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { EventWriter } from './event-writer.ts';
import { emptyMetrics, type HealthSource, type WorkerMetrics, type WorkerState } from './health-server.ts';
import { JobLeases, type Lease } from './job-lease.ts';
import { runJobs, type JobRuntime } from './run-jobs.ts';
import { isTransientError } from '../../contract/transient-error.ts';
import { wantsEvent, type WebhookSender } from './webhooks.ts';

export interface WorkerDeps {
  /** The loaded model; its store is replaced by `blobs`. */
  runtime: JobRuntime;
  blobs: S3BlobStore;
  predictions: PredictionStore;
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

/** Why a running job was told to stop. */
type StopReason = 'canceled' | 'deadline' | 'lease_lost';

interface Claim {
  msg: ReceivedJob;
  job: GenerationJob;
  lease: Lease;
  abort: AbortController;
  stopReason?: StopReason;
  events: EventWriter;
  /** Images finished so far (numbers the `output` webhooks). */
  images: number;
  /** The output so far, per sequence (what an `output` webhook shows). */
  partial: OutputPart[][];
  /** Set once the job's result is being recorded. */
  finishing?: Promise<void>;
}

/**
 * The sidecar's long-running loop: receive jobs, run them in batches on the loaded model, record
 * each result exactly once.
 *
 *   receive ≤ maxBatch messages (long poll, then a short window for more)
 *   claim each: read its record; finished → delete the message (a duplicate delivery); deadline
 *     passed → aborted; cancel asked → canceled; take the job's lease (another live worker has it
 *     → leave the message); starting → processing (conditional write)
 *   runJobs on the batch, events appended in the background; meanwhile a heartbeat extends the
 *     messages and leases and polls the records for cancel_requested / the deadline
 *   per job at `done`: flush its events, then one conditional write processing → succeeded |
 *     canceled with the output; only then delete the message
 *
 * Failures: an error from the job (bad input, the engine) fails that job (status failed, message
 * deleted); a storage error leaves the message to come back (a job is never recorded as succeeded
 * unless all of its PNGs and events were stored first); on the last allowed delivery it fails the
 * job if it can still write, else SQS moves the message to the dead-letter queue.
 */
export class Worker implements HealthSource {
  readonly id: string;
  private readonly runtime: JobRuntime;
  private readonly leases: JobLeases;
  private readonly counters: WorkerMetrics = emptyMetrics();
  private readonly opts: Required<Omit<WorkerOptions, 'chunkSize' | 'log' | 'workerId'>> & Pick<WorkerOptions, 'chunkSize' | 'log'>;
  private current: WorkerState = 'starting';
  private readonly stopReceiving = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly deps: WorkerDeps,
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
    this.runtime = { ...deps.runtime, store: deps.blobs };
    this.leases = new JobLeases(deps.blobs, visibilitySeconds * 1000);
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
    const claims = (await Promise.all(messages.map((m) => this.claim(m)))).filter((c): c is Claim => c !== undefined);
    if (claims.length === 0) return;
    this.counters.batches++;
    this.counters.inFlight += claims.length;
    const heartbeat = this.heartbeat(claims);
    try {
      await this.runBatch(claims);
    } finally {
      await heartbeat.stop();
    }
  }

  /** Makes a delivery runnable, or settles it without running; undefined when there is nothing to run. */
  private async claim(msg: ReceivedJob): Promise<Claim | undefined> {
    const { predictions, blobs } = this.deps;
    if (!msg.job) {
      this.log(`message ${msg.messageId} is not a job: deleted`);
      return this.drop(msg);
    }
    const id = msg.job.predictionId;
    let lease: Lease | null = null;
    try {
      const found = await predictions.get(id);
      if (!found) {
        this.log(`prediction ${id} has no record: message deleted`);
        return this.drop(msg);
      }
      const record = found.value;
      if (TERMINAL.has(record.status)) return this.drop(msg); // a duplicate or late delivery
      if (msg.receiveCount > this.opts.maxAttempts) {
        return this.settleUnrun(msg, 'failed', `the job did not finish in ${this.opts.maxAttempts} attempts: each time, the worker running it stopped (crashed, killed or out of memory)`);
      }
      if (record.deadline && Date.parse(record.deadline) <= Date.now()) {
        const status = record.status === 'starting' ? 'aborted' : 'canceled';
        return this.settleUnrun(msg, status, 'the deadline (Cancel-After) passed before the job could finish');
      }
      if (record.cancel_requested) return this.settleUnrun(msg, 'canceled', null);

      lease = await this.leases.acquire(id, `${this.id}/${msg.messageId}/${msg.receiveCount}/${randomUUID().slice(0, 8)}`);
      if (!lease) {
        // another worker runs it: this delivery comes back after a backoff, and is dropped then if finished
        return this.retryLater(msg, new Error(`prediction ${id} is running on another worker`));
      }
      let job: GenerationJob;
      try {
        job = JSON.parse(new TextDecoder().decode(await blobs.get(msg.job.jobKey))) as GenerationJob;
      } catch (e) {
        if (isTransientError(e)) throw e;
        await lease.release();
        return this.settleUnrun(msg, 'failed', `the job ${msg.job.jobKey} could not be read: ${(e as Error).message}`);
      }
      const now = new Date().toISOString();
      const updated = await predictions.update(id, (r) => (r.status === 'starting' ? { ...r, status: 'processing', started_at: now } : null));
      if (updated.value.status !== 'processing') {
        await lease.release(); // canceled or finished meanwhile
        return this.drop(msg);
      }
      const claim: Claim = {
        msg,
        job,
        lease,
        abort: new AbortController(),
        events: new EventWriter(predictions, blobs, id, (e) => this.log(`prediction ${id}: event write failed: ${(e as Error).message}`)),
        images: 0,
        partial: Array.from({ length: job.n }, () => []),
      };
      // a second `processing` in the log marks a retry: what the earlier attempt streamed is void
      claim.events.push({ type: 'status', status: 'processing' });
      if (record.status === 'starting') this.webhook(updated.value, 'start');
      const wait = Date.now() - msg.sentAt;
      const q = this.counters.queueWaitMs;
      q.count++;
      q.sum += wait;
      q.max = Math.max(q.max, wait);
      return claim;
    } catch (e) {
      await lease?.release().catch(() => {});
      if (isTransientError(e) && msg.receiveCount < this.opts.maxAttempts) return this.retryLater(msg, e);
      try {
        return await this.settleUnrun(msg, 'failed', `the job could not be started: ${(e as Error).message}`);
      } catch (again) {
        return this.retryLater(msg, again);
      }
    }
  }

  /** Runs the claimed jobs together; a job error in a batch of several reruns them one by one to find the culprit. */
  private async runBatch(claims: Claim[]): Promise<void> {
    const byId = new Map(claims.map((c) => [c.job.id, c]));
    const signals = new Map(claims.map((c) => [c.job.id, c.abort.signal]));
    try {
      const events = runJobs(
        claims.map((c) => c.job),
        this.runtime,
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
            void this.outputWebhook(c);
            break;
          case 'done':
            // recorded in the background: the other jobs of the batch keep generating meanwhile
            this.settle(c, this.finish(c, ev.result));
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
        for (const c of unfinished) this.settle(c, this.giveUp(c, e));
      }
    }
    await Promise.all(claims.map((c) => c.finishing));
  }

  private settle(c: Claim, recording: Promise<void>): void {
    c.finishing = recording.finally(() => this.counters.inFlight--);
  }

  /** Records a job's result: events first, then the one conditional status write, then the message goes. */
  private async finish(c: Claim, result: JobResult): Promise<void> {
    const { predictions, queue } = this.deps;
    const id = c.job.id;
    try {
      await c.events.flush();
      if (c.stopReason === 'lease_lost') {
        this.log(`prediction ${id}: lease lost to another worker; this run's result is discarded`);
        this.counters.jobsRetried++;
        return;
      }
      const status: PredictionStatus = c.stopReason ? 'canceled' : 'succeeded';
      const output: OutputPart[][] = result.sequences.map((s) => s.parts);
      const now = new Date().toISOString();
      let mine = false;
      const written = await predictions.update(id, (r) => {
        mine = r.status === 'processing';
        if (!mine) return null;
        return {
          ...r,
          status,
          output,
          error: c.stopReason === 'deadline' ? 'the deadline (Cancel-After) passed while the job ran' : null,
          completed_at: now,
          metrics: {
            ...r.metrics,
            predict_time: result.metrics.predictTimeMs / 1000,
            generated_tokens: result.metrics.generatedTokens,
            finish_reasons: result.sequences.map((q) => q.finishReason),
          },
        };
      });
      if (mine) {
        this.count(status);
        this.counters.tokensGenerated += result.metrics.generatedTokens;
        this.webhook(written.value, 'completed');
        c.events.push({ type: 'status', status });
        c.events.push({ type: 'done', status });
        await c.events.flush().catch(() => {}); // the record is final already: a missing done event is only cosmetic
      }
      await c.lease.release().catch(() => {});
      await queue.delete(c.msg.receiptHandle);
    } catch (e) {
      await this.giveUp(c, e);
    }
  }

  /** A job that did not complete: a storage error means another try later, anything else fails the job. */
  private async giveUp(c: Claim, e: unknown): Promise<void> {
    await c.lease.release().catch(() => {});
    if (isTransientError(e) && c.msg.receiveCount < this.opts.maxAttempts) return this.retryLater(c.msg, e);
    const message = isTransientError(e) ? `storage unavailable after ${c.msg.receiveCount} attempts: ${(e as Error).message}` : (e as Error).message;
    this.log(`prediction ${c.job.id} failed: ${message}`);
    try {
      await c.events.flush().catch(() => {});
      await this.settleUnrun(c.msg, 'failed', message);
    } catch (again) {
      await this.retryLater(c.msg, again); // cannot even record the failure: the queue's DLQ takes it eventually
    }
  }

  /** Moves a prediction that will not run (further) to a final status, and deletes the message. */
  private async settleUnrun(msg: ReceivedJob, status: PredictionStatus, error: string | null): Promise<undefined> {
    const id = msg.job!.predictionId;
    const now = new Date().toISOString();
    let mine = false;
    const written = await this.deps.predictions.update(id, (r) => {
      mine = !TERMINAL.has(r.status);
      return mine ? { ...r, status, error, completed_at: now } : null;
    });
    if (mine) {
      this.count(status);
      this.webhook(written.value, 'completed');
      if (status === 'failed') await this.deps.predictions.appendEvent(id, { type: 'error', message: error ?? 'failed' });
      await this.deps.predictions.appendEvent(id, { type: 'status', status });
      await this.deps.predictions.appendEvent(id, { type: 'done', status });
    }
    await this.deps.queue.delete(msg.receiptHandle);
    return undefined;
  }

  private async drop(msg: ReceivedJob): Promise<undefined> {
    this.counters.messagesDropped++;
    await this.deps.queue.delete(msg.receiptHandle).catch((e) => this.log(`delete failed: ${(e as Error).message}`));
    return undefined;
  }

  /** Leaves the message on the queue, due again after a backoff that grows with its deliveries. */
  private async retryLater(msg: ReceivedJob, e: unknown): Promise<undefined> {
    this.counters.jobsRetried++;
    const backoff = Math.min(this.opts.visibilitySeconds, 2 ** msg.receiveCount);
    this.log(`job ${msg.job?.predictionId}: ${(e as Error).message}; retrying in ${backoff} s (delivery ${msg.receiveCount})`);
    await this.deps.queue.extendVisibility(msg.receiptHandle, backoff).catch(() => {});
    return undefined;
  }

  /** While the batch runs: extend messages and leases, and stop jobs whose record asks for it. */
  private heartbeat(claims: Claim[]): { stop(): Promise<void> } {
    let stopped = false;
    let wake: () => void = () => {};
    const running = () => claims.filter((c) => !c.finishing);
    const loop = (async () => {
      let lastExtend = Date.now();
      while (!stopped) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, this.opts.cancelPollMs);
        });
        if (stopped) break;
        await Promise.all(running().map((c) => this.checkRecord(c)));
        if (Date.now() - lastExtend >= this.opts.heartbeatMs) {
          lastExtend = Date.now();
          await Promise.all(running().map((c) => this.extend(c)));
        }
      }
    })();
    return {
      async stop() {
        stopped = true;
        wake();
        await loop;
      },
    };
  }

  private async checkRecord(c: Claim): Promise<void> {
    try {
      const r = (await this.deps.predictions.get(c.job.id))?.value;
      if (!r || TERMINAL.has(r.status)) this.stop(c, 'lease_lost');
      else if (r.cancel_requested) this.stop(c, 'canceled');
      else if (r.deadline && Date.parse(r.deadline) <= Date.now()) this.stop(c, 'deadline');
    } catch (e) {
      this.log(`prediction ${c.job.id}: reading the record failed: ${(e as Error).message}`);
    }
  }

  private async extend(c: Claim): Promise<void> {
    await this.deps.queue.extendVisibility(c.msg.receiptHandle, this.opts.visibilitySeconds).catch((e) => this.log(`extend failed: ${(e as Error).message}`));
    try {
      if (!(await c.lease.renew())) this.stop(c, 'lease_lost');
    } catch (e) {
      this.log(`prediction ${c.job.id}: renewing the lease failed: ${(e as Error).message}`);
    }
  }

  private stop(c: Claim, reason: StopReason): void {
    if (c.abort.signal.aborted) return;
    c.stopReason = reason;
    c.abort.abort();
  }

  /** `output`: the prediction with the output so far (the record itself gets it only at the end). */
  private async outputWebhook(c: Claim): Promise<void> {
    const index = c.images++;
    const output = structuredClone(c.partial);
    const r = (await this.deps.predictions.get(c.job.id).catch(() => undefined))?.value;
    if (r) this.webhook({ ...r, output }, 'output', index);
  }

  private webhook(record: PredictionRecord, event: 'start' | 'output' | 'completed', index = 0): void {
    const { webhooks } = this.deps;
    if (!webhooks || !record.webhook || !wantsEvent(record.webhook_events_filter, event)) return;
    const url = record.webhook;
    void (async () => {
      const payload = await (this.deps.present ?? ((r: PredictionRecord) => presentRecord(r, this.deps.blobs)))(record);
      await webhooks.send({ url, predictionId: record.id, event, index, payload });
    })().catch((e) => this.log(`webhook for ${record.id}: ${(e as Error).message}`));
  }

  private count(status: PredictionStatus): void {
    if (status === 'succeeded') this.counters.jobsSucceeded++;
    else if (status === 'failed') this.counters.jobsFailed++;
    else if (status === 'canceled') this.counters.jobsCanceled++;
    else if (status === 'aborted') this.counters.jobsAborted++;
  }

  private log(message: string): void {
    this.opts.log?.(`[${this.id}] ${message}`);
  }
}

/** The record with each image key replaced by a presigned URL (when no API presenter is given). */
export async function presentRecord(r: PredictionRecord, blobs: S3BlobStore): Promise<unknown> {
  const output = r.output
    ? await Promise.all(r.output.map((parts) => Promise.all(parts.map(async (p) => (p.type === 'image' ? { type: 'image', url: (await blobs.presignGet(p.key)).url, width: p.width, height: p.height } : p)))))
    : null;
  const { job: _job, owner: _owner, revisions: _revisions, ...shown } = r;
  return { ...shown, output };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
