import { workerHolds } from '../../contract/lease.ts';
import { TERMINAL, type PredictionRecord } from '../../contract/prediction.ts';
import type { ApiContext } from './deps.ts';

/**
 * Cancels a prediction; a finished one stays as it is. One that a worker holds (a live lease) is only
 * asked to stop: the worker stops at its next chunk and writes the end itself, so the events, the
 * webhook and the record agree. One that no worker holds (still queued, or its worker died) is
 * canceled at once; the worker that later receives its message finds it finished and drops it.
 */
export async function requestCancel(ctx: ApiContext, id: string): Promise<PredictionRecord> {
  const before = (await ctx.predictions.get(id))?.value;
  const held = before !== undefined && !TERMINAL.has(before.status) && (await workerHolds(ctx.store, id, ctx.now()));
  const completed_at = new Date(ctx.now()).toISOString();
  const { value } = await ctx.predictions.update(id, (r) => {
    if (TERMINAL.has(r.status)) return null;
    // only as seen when the lease was read: a worker may have started it since
    if (!held && r.status === before?.status) return { ...r, status: 'canceled', cancel_requested: true, completed_at };
    return r.cancel_requested ? null : { ...r, cancel_requested: true };
  });
  return value;
}
