import { TERMINAL } from '../../contract/prediction.ts';
import { stopDelivery, type Delivery, type DeliveryContext } from './delivery.ts';

export interface HeartbeatOptions {
  /** How often the running jobs' records are read for cancel_requested and the deadline. */
  cancelPollMs: number;
  /** How often their messages and leases are extended. */
  heartbeatMs: number;
  /** How far each extension pushes a message's visibility out. */
  visibilitySeconds: number;
}

/**
 * While a batch runs: extends its messages and leases, and stops jobs whose record asks for it (canceled, past
 * the deadline) or that are no longer theirs (the record finished elsewhere, the lease lost). A job stops
 * being watched once its result is being recorded.
 */
export function startHeartbeat(deliveries: Delivery[], ctx: Pick<DeliveryContext, 'predictions' | 'queue' | 'log'>, opts: HeartbeatOptions): { stop(): Promise<void> } {
  let stopped = false;
  let wake: () => void = () => {};
  const running = () => deliveries.filter((d) => !d.finishing);
  const loop = (async () => {
    let lastExtend = Date.now();
    while (!stopped) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, opts.cancelPollMs);
      });
      if (stopped) break;
      await Promise.all(running().map((d) => checkRecord(d, ctx)));
      if (Date.now() - lastExtend >= opts.heartbeatMs) {
        lastExtend = Date.now();
        await Promise.all(running().map((d) => extend(d, ctx, opts.visibilitySeconds)));
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

async function checkRecord(d: Delivery, ctx: Pick<DeliveryContext, 'predictions' | 'log'>): Promise<void> {
  try {
    const r = (await ctx.predictions.get(d.job.id))?.value;
    if (!r || TERMINAL.has(r.status)) stopDelivery(d, 'lease_lost');
    else if (r.cancel_requested) stopDelivery(d, 'canceled');
    else if (r.deadline && Date.parse(r.deadline) <= Date.now()) stopDelivery(d, 'deadline');
  } catch (e) {
    ctx.log(`prediction ${d.job.id}: reading the record failed: ${(e as Error).message}`);
  }
}

async function extend(d: Delivery, ctx: Pick<DeliveryContext, 'queue' | 'log'>, visibilitySeconds: number): Promise<void> {
  await ctx.queue.extendVisibility(d.msg.receiptHandle, visibilitySeconds).catch((e) => ctx.log(`extend failed: ${(e as Error).message}`));
  try {
    if (!(await d.lease.renew())) stopDelivery(d, 'lease_lost');
  } catch (e) {
    ctx.log(`prediction ${d.job.id}: renewing the lease failed: ${(e as Error).message}`);
  }
}
