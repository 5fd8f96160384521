import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceHarness, type ServiceHarness } from './api-harness.ts';

/**
 * A bounded load on loopback: 50 predictions sent at once over real HTTP to the API, run by the
 * real worker on the fixture model, on the real local stack. Every one must complete, once; the
 * latencies are printed (not asserted: timing targets do not belong in tests).
 */
let h: ServiceHarness;

beforeAll(async () => {
  // polling every 250 ms: fifty waiting requests would otherwise keep the local S3 server busy
  h = await startServiceHarness({ policy: { allowHttp: false, allowedAddresses: [] }, pollMs: 250, worker: { cancelPollMs: 500 } });
});
afterAll(async () => h?.stop());

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

describe('a bounded load on loopback', () => {
  it('50 concurrent predictions all complete, none lost or duplicated', async () => {
    const inputs = Array.from({ length: 50 }, (_, i) =>
      i % 5 === 4 ? { prompt: `picture ${i}`, mode: 'image', sampling: { seed: i } } : { prompt: `story ${i}`, max_new_tokens: 4, sampling: { seed: i } },
    );
    // half wait on the server (Prefer: wait), half are created asynchronously and polled
    const runs = await Promise.all(
      inputs.map(async (input, i) => {
        const sync = i % 2 === 0;
        const started = performance.now();
        const res = await fetch(`${h.api.url}/v1/predictions`, {
          method: 'POST',
          body: JSON.stringify({ input }),
          headers: { 'content-type': 'application/json', ...(sync ? { prefer: 'wait=60' } : {}) },
        });
        let p = await res.json();
        const createMs = sync ? null : performance.now() - started; // the function's own work: validate, tokenize, store, enqueue
        while (!['succeeded', 'failed', 'canceled', 'aborted'].includes(p.status)) {
          await new Promise((r) => setTimeout(r, 250));
          p = await (await fetch(p.urls.get)).json();
        }
        return { p, latencyMs: performance.now() - started, createMs };
      }),
    );

    const ids = runs.map((r) => r.p.id);
    expect(new Set(ids).size).toBe(50);
    expect(runs.map((r) => r.p.status)).toEqual(new Array(50).fill('succeeded'));
    for (const [i, { p }] of runs.entries()) {
      expect(p.output.map((o: { type: string }) => o.type)).toEqual(i % 5 === 4 ? ['image'] : ['text']);
    }
    // every event log ends with exactly one done. The worker writes the record first and the log's
    // end after it (a done must never claim a result the record lost), so the last logs may trail
    // the polls above by a moment.
    const logs = await Promise.all(runs.map(async ({ p }) => {
      for (const until = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 100))) {
        const log = await h.predictions.readEvents(p.id);
        if (log.at(-1)?.event.type === 'done' || Date.now() > until) return log.map((e) => e.event);
      }
    }));
    for (const log of logs) expect(log.filter((e) => e.type === 'done')).toEqual([{ type: 'done', status: 'succeeded' }]);
    // each recorded exactly once, nothing left on the queue or dead-lettered, all listed
    expect(h.worker.worker.metrics().jobsSucceeded).toBe(50);
    expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });
    const listed: string[] = [];
    for (let next: string | null = `${h.api.url}/v1/predictions?limit=100`; next; ) {
      const page: { results: { id: string }[]; next: string | null } = await (await fetch(next)).json();
      listed.push(...page.results.map((r) => r.id));
      next = page.next;
    }
    expect([...listed].sort()).toEqual([...ids].sort());

    const latency = runs.map((r) => r.latencyMs);
    const overhead = runs.map((r) => r.latencyMs - r.p.metrics.predict_time * 1000);
    const queued = runs.map((r) => Date.parse(r.p.started_at) - Date.parse(r.p.created_at));
    const fmt = (xs: number[]) => `p50 ${quantile(xs, 0.5).toFixed(0)} ms, p95 ${quantile(xs, 0.95).toFixed(0)} ms`;
    console.log(
      [
        'load: 50 concurrent predictions (40 text × 4 tokens, 10 images of 16 tokens), one worker',
        `  latency (request → result)               ${fmt(latency)}`,
        `  everything but generation (− predict_time) ${fmt(overhead)}`,
        `  of which waiting in the queue            ${fmt(queued)}`,
        `  generation (predict_time)                ${fmt(runs.map((r) => r.p.metrics.predict_time * 1000))}`,
        `  creating one (the API's work, async half) ${fmt(runs.flatMap((r) => (r.createMs === null ? [] : [r.createMs])))}`,
        `  worker batches ${h.worker.worker.metrics().batches}`,
      ].join('\n'),
    );
  });
});
