import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredictionRecord } from '../contract/prediction.ts';
import { startHealthServer } from '../sidecar/worker/health-server.ts';
import { JobWorker, type WorkerOptions } from '../sidecar/worker/job-worker.ts';
import { loadModel, type LoadedModel } from '../sidecar/worker/load-model.ts';
import { longTextInput, startHarness, whileRunning, type Harness } from './worker-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * The worker with engine v2's continuous batching (issue 21), end to end on the tiny random model,
 * local S3 and SQS: it keeps receiving while jobs run, a job that arrives joins the running batch,
 * one that finds every cache slot taken waits in the queue until a job leaves.
 */
let h: Harness;
const FAST: WorkerOptions = { waitSeconds: 1, visibilitySeconds: 3, cancelPollMs: 100, maxAttempts: 3 };
const finished = (r: PredictionRecord) => ['succeeded', 'failed', 'canceled', 'aborted'].includes(r.status);

beforeAll(async () => {
  h = await startHarness({ visibilityTimeoutSeconds: 3, maxReceiveCount: 4, queueName: 'worker-continuous-test' });
});
afterAll(async () => h?.close());

const withWorker = <T>(model: LoadedModel, body: (w: JobWorker) => Promise<T>): Promise<T> => whileRunning(new JobWorker({ model, store: h.blobs, queue: h.queue }, FAST), body);

describe('worker, continuous batching', () => {
  let model: LoadedModel;
  beforeAll(async () => {
    model = await loadModel(h.modelDir);
  });
  afterAll(async () => Promise.all([model?.generator.release(), model?.codec.release()]));

  it('a job that arrives while another runs starts at once and finishes first; slots, rows and tokens/s are in /metrics', async () => {
    expect(model.generator.capacity?.slots).toBe(32);
    await withWorker(model, async (worker) => {
      const long = await h.submit(longTextInput(h.config, 3000));
      await waitUntil(async () => (await h.predictions.readEvents(long)).some((e) => e.event.type === 'text'), 30_000, 'the long job to stream');
      expect(worker.metrics()).toMatchObject({ cacheSlots: 32, rowsHeld: 1, rowsWaiting: 0, inFlight: 1 });

      const short = await h.submit({ prompt: 'hi', mode: 'text', maxNewTokens: 5, sampling: { seed: 1 } });
      const done = await h.waitFor(short, finished);
      expect(done.status).toBe('succeeded');
      const longNow = (await h.predictions.get(long))!.value;
      expect(longNow.status).toBe('processing'); // the short job joined it and left before it
      const health = await startHealthServer(worker);
      try {
        const text = await (await fetch(`${health.url}/metrics`)).text();
        expect(text).toMatch(/^anole_cache_slots 32$/m);
        expect(text).toMatch(/^anole_cache_rows_held 1$/m);
        expect(Number(/^anole_tokens_per_second (\S+)$/m.exec(text)![1])).toBeGreaterThan(0);
      } finally {
        await health.close();
      }
      await h.predictions.update(long, (r) => ({ ...r, cancel_requested: true }));
      expect((await h.waitFor(long, finished)).status).toBe('canceled');
      expect(worker.metrics()).toMatchObject({ batches: 2, rowsHeld: 0 });
    });
  });
});

describe('worker, a late heartbeat', () => {
  it("keeps a job's message that comes back while the job runs: it completes once, unretried, its message deleted", async () => {
    const model = await loadModel(h.modelDir);
    const lines: string[] = [];
    try {
      // messages hidden for 1 s and no heartbeat in time: the job's message comes back while it runs
      const worker = new JobWorker({ model, store: h.blobs, queue: h.queue }, { ...FAST, visibilitySeconds: 1, heartbeatMs: 60_000, log: (l) => lines.push(l) });
      await whileRunning(worker, async () => {
        const id = await h.submit(longTextInput(h.config, 250));
        const r = await h.waitFor(id, finished);
        expect(r.status).toBe('succeeded');
        expect(r.metrics.generated_tokens).toBe(250);
        expect(lines.some((l) => l.includes('came back while it runs'))).toBe(true);
        expect(worker.metrics()).toMatchObject({ jobsSucceeded: 1, jobsRetried: 0 });
        // deleted with the latest receipt handle (SQS ignores a delete with an older one)
        await waitUntil(async () => (await h.queueDepth()).queued === 0, 10_000, 'the message to be deleted');
      });
    } finally {
      await Promise.all([model.generator.release(), model.codec.release()]);
    }
  });
});

describe('worker, a cache with room for one guided image', () => {
  let small: LoadedModel;
  beforeAll(async () => {
    small = await loadModel(h.modelDir, { maxSlots: 3 });
  });
  afterAll(async () => Promise.all([small?.generator.release(), small?.codec.release()]));

  it('a job that does not fit stays in the queue until a job leaves, then runs', async () => {
    expect(small.generator.capacity?.slots).toBe(3);
    await withWorker(small, async (worker) => {
      // a guided interleaved job holds three rows (it may open an image) for as long as it writes: all the slots
      const c = h.config;
      const long = await h.submit({ prompt: 'a long tale', mode: 'interleaved', maxNewTokens: 3000, sampling: { seed: 5 }, logitBias: { [c.eosTokenId]: -100, [c.boiTokenId]: -100 } });
      await waitUntil(async () => (await h.predictions.readEvents(long)).some((e) => e.event.type === 'text'), 30_000, 'the long job to stream');
      expect(worker.metrics()).toMatchObject({ cacheSlots: 3, rowsHeld: 3, inFlight: 1 });
      const text = await h.submit({ prompt: 'hello', mode: 'text', maxNewTokens: 4, sampling: { seed: 2 } });
      // while it streams on, the text job is not received (no slot is free)
      const streamed = (await h.predictions.readEvents(long)).length;
      await waitUntil(async () => (await h.predictions.readEvents(long)).length > streamed + 2, 30_000, 'more of the long job');
      expect((await h.predictions.get(text))!.value.status).toBe('starting');
      expect(worker.metrics().inFlight).toBe(1);
      await h.predictions.update(long, (r) => ({ ...r, cancel_requested: true }));
      expect((await h.waitFor(long, finished)).status).toBe('canceled');
      expect((await h.waitFor(text, finished)).status).toBe('succeeded');
    });
  });
});
