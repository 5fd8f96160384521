import { Hono } from 'hono';
import { serveApi, type ServedApi } from '../../contract/serve-http.ts';

/** What a worker has done since it started (counters only grow). */
export interface WorkerMetrics {
  jobsSucceeded: number;
  jobsFailed: number;
  jobsCanceled: number;
  jobsAborted: number;
  /** Deliveries put back for another try (an S3 outage, a lost lease, a worker busy with the same job). */
  jobsRetried: number;
  /** Deliveries of jobs already finished or of malformed messages, deleted without running. */
  messagesDropped: number;
  tokensGenerated: number;
  batches: number;
  /** From SendMessage to the start of generation, over the jobs started. */
  queueWaitMs: { count: number; sum: number; max: number };
  /** Jobs running now. */
  inFlight: number;
  /** The engine's cache slots (0: an engine that reports none, e.g. a test's stand-in). */
  cacheSlots: number;
  /** Cache rows the jobs in hand hold or wait for (a job: n sequences × 3 rows when guided and drawing, else 1). */
  rowsHeld: number;
  /** Of rowsHeld, those beyond the slots: sequences waiting in the engine's queue. */
  rowsWaiting: number;
  /** Tokens generated per second over the last minute (by jobs that ended in it). */
  tokensPerSecond: number;
}

export type WorkerState = 'starting' | 'running' | 'draining' | 'stopped';

export interface HealthSource {
  state(): WorkerState;
  metrics(): WorkerMetrics;
}

export function emptyMetrics(): WorkerMetrics {
  return {
    jobsSucceeded: 0, jobsFailed: 0, jobsCanceled: 0, jobsAborted: 0, jobsRetried: 0, messagesDropped: 0,
    tokensGenerated: 0, batches: 0, queueWaitMs: { count: 0, sum: 0, max: 0 }, inFlight: 0,
    cacheSlots: 0, rowsHeld: 0, rowsWaiting: 0, tokensPerSecond: 0,
  };
}

/**
 * GET /healthz: 200 {status} while the worker takes jobs, 503 while starting, draining or stopped
 * (so a load balancer or ECS stops counting on it). GET /metrics: Prometheus text format.
 */
export function healthApp(source: HealthSource): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => {
    const state = source.state();
    return c.json({ status: state }, state === 'running' ? 200 : 503);
  });
  app.get('/metrics', (c) => c.text(prometheusText(source.metrics(), source.state()), 200, { 'content-type': 'text/plain; version=0.0.4' }));
  return app;
}

export type HealthServer = ServedApi;

export async function startHealthServer(source: HealthSource, opts: { port?: number; hostname?: string } = {}): Promise<HealthServer> {
  return serveApi(healthApp(source), opts);
}

function prometheusText(m: WorkerMetrics, state: WorkerState): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('anole_jobs_total', 'counter', 'Jobs finished, by final status.', [
    ['{status="succeeded"}', m.jobsSucceeded],
    ['{status="failed"}', m.jobsFailed],
    ['{status="canceled"}', m.jobsCanceled],
    ['{status="aborted"}', m.jobsAborted],
  ]);
  metric('anole_jobs_retried_total', 'counter', 'Deliveries left for another try.', [['', m.jobsRetried]]);
  metric('anole_messages_dropped_total', 'counter', 'Deliveries of finished jobs or malformed messages, deleted unrun.', [['', m.messagesDropped]]);
  metric('anole_tokens_generated_total', 'counter', 'New tokens generated.', [['', m.tokensGenerated]]);
  metric('anole_batches_total', 'counter', 'Generate calls (each runs one batch of jobs).', [['', m.batches]]);
  metric('anole_queue_wait_seconds', 'counter', 'Time from enqueue to start of generation.', [
    ['_sum', m.queueWaitMs.sum / 1000],
    ['_count', m.queueWaitMs.count],
  ]);
  metric('anole_queue_wait_seconds_max', 'gauge', 'Longest queue wait seen.', [['', m.queueWaitMs.max / 1000]]);
  metric('anole_jobs_in_flight', 'gauge', 'Jobs running now.', [['', m.inFlight]]);
  metric('anole_cache_slots', 'gauge', "Engine v2's KV cache slots (rows).", [['', m.cacheSlots]]);
  metric('anole_cache_rows_held', 'gauge', 'Cache rows the jobs in hand hold or wait for.', [['', m.rowsHeld]]);
  metric('anole_cache_rows_waiting', 'gauge', 'Cache rows waiting for a free slot (queued sequences).', [['', m.rowsWaiting]]);
  metric('anole_tokens_per_second', 'gauge', 'Tokens generated per second over the last minute.', [['', m.tokensPerSecond]]);
  metric('anole_worker_up', 'gauge', 'The worker state (1 for the current one).', (['starting', 'running', 'draining', 'stopped'] as const).map((s) => [`{state="${s}"}`, s === state ? 1 : 0]));
  return lines.join('\n') + '\n';
}
