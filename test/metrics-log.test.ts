import { describe, expect, it, vi } from 'vitest';
import { METRICS_NAMESPACE, ROWS_WAITING_METRIC } from '../contract/worker-metrics.ts';
import { emptyMetrics } from '../sidecar/worker/health-server.ts';
import { metricsLogLine, startMetricsLog } from '../sidecar/worker/metrics-log.ts';

describe("the worker's CloudWatch metric lines (embedded metric format)", () => {
  it('carry the cache rows waiting, held, slots, jobs and tokens/s, each declared with its unit', () => {
    const m = { ...emptyMetrics(), cacheSlots: 32, rowsHeld: 40, rowsWaiting: 8, inFlight: 5, tokensPerSecond: 12.5 };
    const line = JSON.parse(metricsLogLine(m, 1_700_000_000_000));
    expect(line._aws.Timestamp).toBe(1_700_000_000_000);
    const [directive] = line._aws.CloudWatchMetrics;
    expect(directive).toMatchObject({ Namespace: METRICS_NAMESPACE, Dimensions: [[]] });
    // every declared metric is a top-level number of the line (what CloudWatch extracts)
    const values = Object.fromEntries(directive.Metrics.map((d: { Name: string }) => [d.Name, line[d.Name]]));
    expect(values).toEqual({ [ROWS_WAITING_METRIC]: 8, CacheRowsHeld: 40, CacheSlots: 32, JobsInFlight: 5, TokensPerSecond: 12.5 });
    expect(directive.Metrics.find((d: { Name: string }) => d.Name === 'TokensPerSecond').Unit).toBe('Count/Second');
  });

  it('are written every interval until stopped', () => {
    vi.useFakeTimers();
    try {
      const lines: string[] = [];
      let rows = 0;
      const stop = startMetricsLog({ metrics: () => ({ ...emptyMetrics(), rowsWaiting: ++rows }) }, 60, (l) => lines.push(l));
      vi.advanceTimersByTime(59_999);
      expect(lines).toHaveLength(0);
      vi.advanceTimersByTime(120_001);
      expect(lines.map((l) => JSON.parse(l)[ROWS_WAITING_METRIC])).toEqual([1, 2, 3]);
      stop();
      vi.advanceTimersByTime(600_000);
      expect(lines).toHaveLength(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
