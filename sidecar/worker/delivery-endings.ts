import type { JobResult, OutputPart } from '../../contract/job.ts';
import type { ReceivedJob } from '../../contract/job-queue.ts';
import { TERMINAL, type PredictionStatus } from '../../contract/prediction.ts';
import { isTransientError } from '../../contract/transient-error.ts';
import type { WorkerMetrics } from './health-server.ts';
import type { Delivery, DeliveryContext } from './delivery.ts';

/**
 * How a delivery ends, each with at most one conditional write of the record: the job's result (finish), a
 * failure (giveUp), a final status without running (settleUnrun), a message dropped or left for later. The
 * record is written before the message is deleted, so a crash in between only redelivers a finished job.
 */
export class DeliveryEndings {
  constructor(private readonly ctx: DeliveryContext) {}

  /** Records the outcome in the background: the other jobs of the batch keep generating meanwhile. */
  settle(d: Delivery, recording: Promise<void>): void {
    d.finishing = recording.finally(() => this.ctx.metrics.inFlight--);
  }

  /** Records a job's result: events first, then the one conditional status write, then the message goes. */
  async finish(d: Delivery, result: JobResult): Promise<void> {
    const { predictions, queue, metrics } = this.ctx;
    const id = d.job.id;
    try {
      await d.events.flush();
      if (d.stopReason === 'lease_lost') {
        this.ctx.log(`prediction ${id}: lease lost to another worker; this run's result is discarded`);
        metrics.jobsRetried++;
        return;
      }
      const status: PredictionStatus = d.stopReason ? 'canceled' : 'succeeded';
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
          error: d.stopReason === 'deadline' ? 'the deadline (Cancel-After) passed while the job ran' : null,
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
        countFinished(metrics, status);
        metrics.tokensGenerated += result.metrics.generatedTokens;
        this.ctx.notify(written.value, 'completed');
        d.events.push({ type: 'status', status });
        d.events.push({ type: 'done', status });
        await d.events.flush().catch(() => {}); // the record is final already: a missing done event is only cosmetic
      }
      await d.lease.release().catch(() => {});
      await queue.delete(d.msg.receiptHandle);
    } catch (e) {
      await this.giveUp(d, e);
    }
  }

  /** A job that did not complete: a storage error means another try later, anything else fails the job. */
  async giveUp(d: Delivery, e: unknown): Promise<void> {
    await d.lease.release().catch(() => {});
    if (isTransientError(e) && d.msg.receiveCount < this.ctx.maxAttempts) return this.retryLater(d.msg, e);
    const message = isTransientError(e) ? `storage unavailable after ${d.msg.receiveCount} attempts: ${(e as Error).message}` : (e as Error).message;
    this.ctx.log(`prediction ${d.job.id} failed: ${message}`);
    try {
      await d.events.flush().catch(() => {});
      await this.settleUnrun(d.msg, 'failed', message);
    } catch (again) {
      await this.retryLater(d.msg, again); // cannot even record the failure: the queue's DLQ takes it eventually
    }
  }

  /** Moves a prediction that will not run (further) to a final status, and deletes the message. */
  async settleUnrun(msg: ReceivedJob, status: PredictionStatus, error: string | null): Promise<undefined> {
    const { predictions, queue } = this.ctx;
    const id = msg.job!.predictionId;
    const now = new Date().toISOString();
    let mine = false;
    const written = await predictions.update(id, (r) => {
      mine = !TERMINAL.has(r.status);
      return mine ? { ...r, status, error, completed_at: now } : null;
    });
    if (mine) {
      countFinished(this.ctx.metrics, status);
      this.ctx.notify(written.value, 'completed');
      if (status === 'failed') await predictions.appendEvent(id, { type: 'error', message: error ?? 'failed' });
      await predictions.appendEvent(id, { type: 'status', status });
      await predictions.appendEvent(id, { type: 'done', status });
    }
    await queue.delete(msg.receiptHandle);
    return undefined;
  }

  /** Deletes a message there is nothing to do for (a duplicate, a finished job, not a job at all). */
  async drop(msg: ReceivedJob): Promise<undefined> {
    this.ctx.metrics.messagesDropped++;
    await this.ctx.queue.delete(msg.receiptHandle).catch((e) => this.ctx.log(`delete failed: ${(e as Error).message}`));
    return undefined;
  }

  /** Leaves the message on the queue, due again after a backoff that grows with its deliveries. */
  async retryLater(msg: ReceivedJob, e: unknown): Promise<undefined> {
    this.ctx.metrics.jobsRetried++;
    const backoff = Math.min(this.ctx.visibilitySeconds, 2 ** msg.receiveCount);
    this.ctx.log(`job ${msg.job?.predictionId}: ${(e as Error).message}; retrying in ${backoff} s (delivery ${msg.receiveCount})`);
    await this.ctx.queue.extendVisibility(msg.receiptHandle, backoff).catch(() => {});
    return undefined;
  }
}

function countFinished(metrics: WorkerMetrics, status: PredictionStatus): void {
  if (status === 'succeeded') metrics.jobsSucceeded++;
  else if (status === 'failed') metrics.jobsFailed++;
  else if (status === 'canceled') metrics.jobsCanceled++;
  else if (status === 'aborted') metrics.jobsAborted++;
}
