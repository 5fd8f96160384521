import { workerHolds } from '../../contract/lease.ts';
import { TERMINAL, type PredictionRecord } from '../../contract/prediction.ts';
import type { Versioned } from '../../contract/prediction-store.ts';
import type { ApiContext } from './deps.ts';

/**
 * A prediction whose job can no longer run ends when the API next reads it: its Cancel-After deadline
 * passed and no worker holds its lease (none took it, or the one running it stopped). A queued one is
 * aborted, a started one failed, each with an error that says why. Conditional like every write: a
 * worker that takes it meanwhile either sees it ended (and drops its message) or wins, and this reader
 * then gets its record.
 */
type Ctx = Pick<ApiContext, 'predictions' | 'store' | 'now'>;

export const NEVER_STARTED = 'the deadline (Cancel-After) passed before any worker started it';
export const WORKER_GONE = 'the deadline (Cancel-After) passed and no worker holds it: the worker running it stopped';

export async function endIfOrphaned(ctx: Ctx, found: Versioned<PredictionRecord>): Promise<Versioned<PredictionRecord>> {
  const r = found.value;
  const now = ctx.now();
  if (TERMINAL.has(r.status) || !r.deadline || Date.parse(r.deadline) > now) return found;
  if (await workerHolds(ctx.store, r.id, now)) return found;
  const completed_at = new Date(now).toISOString();
  return ctx.predictions.update(r.id, (cur) => {
    if (cur.status === 'starting') return { ...cur, status: 'aborted', error: NEVER_STARTED, completed_at };
    if (cur.status === 'processing') return { ...cur, status: 'failed', error: WORKER_GONE, completed_at };
    return null;
  });
}

/** ctx.predictions' reads, each ending the prediction first if its job can no longer run. */
export function settlingReads(ctx: Ctx): Pick<ApiContext['predictions'], 'get' | 'readEvents'> {
  return {
    get: async (id) => {
      const found = await ctx.predictions.get(id);
      return found && endIfOrphaned(ctx, found);
    },
    readEvents: (...a) => ctx.predictions.readEvents(...a),
  };
}
