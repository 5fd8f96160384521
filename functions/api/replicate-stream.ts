import type { PredictionStatus } from '../../contract/prediction.ts';

/**
 * One event of the prediction's log (as the stream renders it: blob keys already presigned URLs)
 * in Replicate's stream protocol, which its clients read: `output` carries raw text (or a file's
 * URL), `logs` lines of progress, `error` a JSON `{detail}`, `done` `{}` or `{reason}`. Events it
 * has no place for give null. Sequences (n > 1) interleave: Replicate has no such notion.
 */
export function replicateEvent(e: { type: string } & Record<string, unknown>): { event: string; data: string } | null {
  switch (e.type) {
    case 'text':
      return { event: 'output', data: String(e.delta) };
    case 'image':
      return { event: 'output', data: String(e.url) };
    case 'status':
      return { event: 'logs', data: `status: ${String(e.status)}` };
    case 'image_rows':
      return { event: 'logs', data: `sequence ${String(e.sequence)} image ${String(e.image)}: ${String(e.rows)}/${String(e.total_rows)} rows` };
    case 'error':
      return { event: 'error', data: JSON.stringify({ detail: e.message }) };
    case 'done': {
      const status = e.status as PredictionStatus;
      const reason = status === 'succeeded' ? null : status === 'failed' ? 'error' : 'canceled';
      return { event: 'done', data: JSON.stringify(reason ? { reason } : {}) };
    }
    default:
      return null;
  }
}
