import { TERMINAL, type PredictionRecord } from '../../contract/prediction.ts';
import type { ApiContext } from './deps.ts';

/**
 * Asks for a cancel; a finished prediction stays as it is. Only the worker writes the final
 * status — it stops a running job at its next chunk, and drops a queued one with `canceled` when
 * its message comes — so the events, the webhook and the record end the same way for every cancel.
 */
export async function requestCancel(ctx: ApiContext, id: string): Promise<PredictionRecord> {
  const { value } = await ctx.predictions.update(id, (r) => (TERMINAL.has(r.status) || r.cancel_requested ? null : { ...r, cancel_requested: true }));
  return value;
}
