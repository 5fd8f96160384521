import { randomUUID } from 'node:crypto';
import type { GenerationJob } from '../../contract/job.ts';
import type { ReceivedJob } from '../../contract/job-queue.ts';
import { TERMINAL } from '../../contract/prediction.ts';
import { isTransientError } from '../../contract/transient-error.ts';
import { EventWriter } from './event-writer.ts';
import type { Delivery, DeliveryContext } from './delivery.ts';
import type { DeliveryEndings } from './delivery-endings.ts';
import type { Lease } from './job-lease.ts';

/**
 * Makes a delivery runnable, or settles it without running; undefined when there is nothing to run.
 * Its record finished → the message goes (a duplicate delivery); too many deliveries → failed; deadline
 * passed → aborted; cancel asked → canceled; then the job's lease (another live worker has it → the message
 * comes back later) and one conditional write starting → processing.
 */
export async function claimDelivery(msg: ReceivedJob, ctx: DeliveryContext, endings: DeliveryEndings): Promise<Delivery | undefined> {
  const { predictions, blobs, maxAttempts } = ctx;
  if (!msg.job) {
    ctx.log(`message ${msg.messageId} is not a job: deleted`);
    return endings.drop(msg);
  }
  const id = msg.job.predictionId;
  let lease: Lease | null = null;
  try {
    const found = await predictions.get(id);
    if (!found) {
      ctx.log(`prediction ${id} has no record: message deleted`);
      return endings.drop(msg);
    }
    const record = found.value;
    if (TERMINAL.has(record.status)) return endings.drop(msg); // a duplicate or late delivery
    if (msg.receiveCount > maxAttempts) {
      return endings.settleUnrun(msg, 'failed', `the job did not finish in ${maxAttempts} attempts: each time, the worker running it stopped (crashed, killed or out of memory)`);
    }
    if (record.deadline && Date.parse(record.deadline) <= Date.now()) {
      const status = record.status === 'starting' ? 'aborted' : 'canceled';
      return endings.settleUnrun(msg, status, 'the deadline (Cancel-After) passed before the job could finish');
    }
    if (record.cancel_requested) return endings.settleUnrun(msg, 'canceled', null);

    // a live lease of this worker's own, for a job it no longer runs, is an earlier run's whose release failed
    const ownStale = (holder: string) => holder.startsWith(`${ctx.workerId}/`) && !ctx.inHand(id);
    lease = await ctx.leases.acquire(id, `${ctx.workerId}/${msg.messageId}/${msg.receiveCount}/${randomUUID().slice(0, 8)}`, ownStale);
    if (!lease) {
      // another worker runs it: this delivery comes back after a backoff, and is dropped then if finished
      return endings.retryLater(msg, new Error(`prediction ${id} is running on another worker`));
    }
    let job: GenerationJob;
    try {
      job = JSON.parse(new TextDecoder().decode(await blobs.get(msg.job.jobKey))) as GenerationJob;
    } catch (e) {
      if (isTransientError(e)) throw e;
      await lease.release();
      return endings.settleUnrun(msg, 'failed', `the job ${msg.job.jobKey} could not be read: ${(e as Error).message}`);
    }
    const now = new Date().toISOString();
    const updated = await predictions.update(id, (r) => (r.status === 'starting' ? { ...r, status: 'processing', started_at: now } : null));
    if (updated.value.status !== 'processing') {
      await lease.release(); // canceled or finished meanwhile
      return endings.drop(msg);
    }
    const delivery: Delivery = {
      msg,
      job,
      lease,
      abort: new AbortController(),
      events: new EventWriter(predictions, blobs, id, (e) => ctx.log(`prediction ${id}: event write failed: ${(e as Error).message}`)),
      images: 0,
      output: Array.from({ length: job.n }, () => []),
    };
    // a second `processing` in the log marks a retry: what the earlier attempt streamed is void
    delivery.events.push({ type: 'status', status: 'processing' });
    if (record.status === 'starting') ctx.notify(updated.value, 'start');
    const wait = Date.now() - msg.sentAt;
    const q = ctx.metrics.queueWaitMs;
    q.count++;
    q.sum += wait;
    q.max = Math.max(q.max, wait);
    return delivery;
  } catch (e) {
    await lease?.release().catch(() => {});
    if (isTransientError(e) && msg.receiveCount < maxAttempts) return endings.retryLater(msg, e);
    try {
      return await endings.settleUnrun(msg, 'failed', `the job could not be started: ${(e as Error).message}`);
    } catch (again) {
      return endings.retryLater(msg, again);
    }
  }
}
