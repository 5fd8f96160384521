import type { OutputPart, SequenceResult } from './job.ts';

/**
 * A prediction as the API shows it (Replicate's resource): the one record both sides update.
 * It lives in the blob store as `predictions/{id}/status.json` and changes only through
 * conditional writes, so a retried job never moves a finished prediction backwards.
 */
export type PredictionStatus = 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled' | 'aborted';

export const TERMINAL: ReadonlySet<PredictionStatus> = new Set(['succeeded', 'failed', 'canceled', 'aborted']);

/** Allowed moves; anything else is refused by the store. */
export const TRANSITIONS: Record<PredictionStatus, PredictionStatus[]> = {
  starting: ['processing', 'failed', 'canceled', 'aborted'],
  processing: ['succeeded', 'failed', 'canceled'],
  succeeded: [],
  failed: [],
  canceled: [],
  aborted: [],
};

export type WebhookEvent = 'start' | 'output' | 'logs' | 'completed';

export interface PredictionRecord {
  id: string;
  /** Who may see it: a hash of the API key, or "local" with keys off. */
  owner: string;
  status: PredictionStatus;
  /** The user's input as validated (images replaced by their stored keys). */
  input: Record<string, unknown>;
  /** One entry per sequence (n), each an ordered list of parts; image parts carry blob keys. */
  output: OutputPart[][] | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  /** Cancel-After: past this instant an unstarted prediction is aborted, a running one canceled. */
  deadline: string | null;
  /** Set by POST /cancel; the worker stops at the next chunk boundary. */
  cancel_requested: boolean;
  webhook: string | null;
  webhook_events_filter: WebhookEvent[];
  /** finish_reasons: per sequence, why it ended (eos, length, image, canceled); the OpenAI shims report it. */
  metrics: { predict_time?: number; generated_tokens?: number; finish_reasons?: SequenceResult['finishReason'][] };
  /** The job key the worker runs (`jobs/{id}.json`). */
  job: string;
  /**
   * The ids of the latest writes, newest last (PredictionStore adds a fresh one on every write and keeps
   * 8), so that a writer whose answer was lost can tell that its write landed, even when others have
   * written since. Internal: the API does not show it.
   */
  revisions?: string[];
}

/** A prediction as it is created: starting, nothing run yet. `job` defaults to `jobs/{id}.json`. */
export function newPrediction(
  fields: Pick<PredictionRecord, 'id' | 'owner' | 'input'> & Partial<Omit<PredictionRecord, 'id' | 'owner' | 'input'>>,
): PredictionRecord {
  return {
    status: 'starting',
    output: null,
    error: null,
    created_at: new Date().toISOString(),
    started_at: null,
    completed_at: null,
    deadline: null,
    cancel_requested: false,
    webhook: null,
    webhook_events_filter: [],
    metrics: {},
    job: `jobs/${fields.id}.json`,
    ...fields,
  };
}

/** Events of a running prediction, appended in order for the stream endpoint (`predictions/{id}/events/{seq}`). */
export type PredictionEvent =
  | { type: 'status'; status: PredictionStatus }
  | { type: 'text'; sequence: number; delta: string }
  | { type: 'image_rows'; sequence: number; image: number; rows: number; total_rows: number; preview_key?: string }
  | { type: 'image'; sequence: number; image: number; key: string; width: number; height: number }
  | { type: 'done'; status: PredictionStatus }
  | { type: 'error'; message: string };

/**
 * A prediction event as the stream endpoint (GET /v1/predictions/{id}/stream) sends it: stored keys
 * replaced by presigned URLs (`expires_at` says until when). The playground reads this type.
 */
export type StreamedEvent =
  | Exclude<PredictionEvent, { type: 'image' | 'image_rows' }>
  | (Omit<Extract<PredictionEvent, { type: 'image' }>, 'key'> & { url: string; expires_at: string })
  | (Omit<Extract<PredictionEvent, { type: 'image_rows' }>, 'preview_key'> & { preview_url?: string; expires_at?: string });

/** The message a queue carries: a pointer, never the job itself (claim check). */
export interface QueuedJob {
  predictionId: string;
  jobKey: string;
}
