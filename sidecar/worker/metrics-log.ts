import { METRICS_NAMESPACE, ROWS_WAITING_METRIC } from '../../contract/worker-metrics.ts';
import type { WorkerMetrics } from './health-server.ts';

/**
 * One CloudWatch embedded-metric-format line (a JSON log line that CloudWatch Logs turns into metrics,
 * no SDK call) with the worker's load: cache rows waiting for a slot (queued work the queue's message
 * counts do not show), rows held, slots, jobs running, tokens per second. No dimensions: the scaling
 * alarm sums the workers' lines per minute.
 */
export function metricsLogLine(m: WorkerMetrics, now = Date.now()): string {
  const values = {
    [ROWS_WAITING_METRIC]: m.rowsWaiting,
    CacheRowsHeld: m.rowsHeld,
    CacheSlots: m.cacheSlots,
    JobsInFlight: m.inFlight,
    TokensPerSecond: m.tokensPerSecond,
  };
  const units: Record<keyof typeof values, string> = {
    [ROWS_WAITING_METRIC]: 'Count',
    CacheRowsHeld: 'Count',
    CacheSlots: 'Count',
    JobsInFlight: 'Count',
    TokensPerSecond: 'Count/Second',
  };
  return JSON.stringify({
    _aws: {
      Timestamp: now,
      CloudWatchMetrics: [{ Namespace: METRICS_NAMESPACE, Dimensions: [[]], Metrics: Object.entries(units).map(([Name, Unit]) => ({ Name, Unit })) }],
    },
    ...values,
  });
}

/** Writes a metrics line every `seconds` (ANOLE_METRICS_LOG_SECONDS; the infra sets 60) until stopped. */
export function startMetricsLog(source: { metrics(): WorkerMetrics }, seconds: number, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): () => void {
  const timer = setInterval(() => write(metricsLogLine(source.metrics())), seconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
