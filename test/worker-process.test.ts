import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredictionEvent, PredictionRecord } from '../contract/prediction.ts';
import { withHugepageMalloc } from '../sidecar/onnx/hugepage-malloc.ts';
import { JobWorker } from '../sidecar/worker/job-worker.ts';
import { loadModel } from '../sidecar/worker/load-model.ts';
import { longTextInput, startHarness, type Harness } from './worker-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * The worker as its own process (sidecar/worker/main.ts, configured by the environment), as it
 * runs in production: killed with SIGKILL mid-job, its message comes back and another worker
 * completes the job exactly once; SIGTERM drains it (the job in hand finishes, nothing new is
 * taken, exit 0).
 */
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ visibilityTimeoutSeconds: 2, maxReceiveCount: 5, queueName: 'worker-process-test' });
});
afterAll(async () => {
  await h?.close();
});

const finished = (r: PredictionRecord) => ['succeeded', 'failed', 'canceled', 'aborted'].includes(r.status);
const events = async (id: string): Promise<PredictionEvent[]> => (await h.predictions.readEvents(id)).map((e) => e.event);

interface WorkerProcess {
  child: ChildProcess;
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts sidecar/worker/main.ts on the harness's stack and model; resolves once it is ready. */
async function spawnWorker(): Promise<WorkerProcess> {
  // node itself with tsx as a loader (the tsx CLI would be a parent relaying signals: SIGKILL would miss the worker)
  const env = {
    ...withHugepageMalloc(process.env), // as the worker image starts it
    ...h.stack.env,
    ANOLE_MODEL: h.modelDir,
    ANOLE_HEALTH_PORT: '0',
    ANOLE_VISIBILITY_SECONDS: '2',
    ANOLE_WAIT_SECONDS: '1',
    ANOLE_CANCEL_POLL_MS: '100',
    ANOLE_CHUNK_SIZE: '4',
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'sidecar/worker/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const ready = new Promise<{ started_seconds: number; hugepage_malloc: boolean }>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l.startsWith('{') && JSON.parse(l).ready) resolve(JSON.parse(l));
    });
    void exited.then(({ code }) => reject(new Error(`worker exited (${code}) before it was ready:\n${stderr.join('\n')}`)));
  });
  // the ready line also says how long the start took and whether malloc was on huge pages
  const line = await ready;
  expect(line.started_seconds).toBeGreaterThan(0);
  expect(line.hugepage_malloc).toBe(true);
  return { child, stderr, exited };
}

describe('worker process', () => {
  it('killed mid-job: the message comes back and another worker completes the job exactly once', async () => {
    const first = await spawnWorker();
    const id = await h.submit(longTextInput(h.config, 80));
    try {
      await waitUntil(async () => (await events(id)).some((e) => e.type === 'text'), 30_000, 'the first text');
    } finally {
      first.child.kill('SIGKILL');
    }
    expect((await first.exited).signal).toBe('SIGKILL');
    expect((await h.predictions.get(id))!.value.status).toBe('processing');

    const model = await loadModel(h.modelDir);
    const second = new JobWorker({ model, store: h.blobs, queue: h.queue }, { waitSeconds: 1, visibilitySeconds: 2, cancelPollMs: 100, chunkSize: 4 });
    const loop = second.run();
    try {
      const r = await h.waitFor(id, finished, 40_000);
      expect(r.status).toBe('succeeded');
      expect(r.metrics.generated_tokens).toBe(80);
    } finally {
      await second.drain();
      await loop;
      await Promise.all([model.generator.release(), model.codec.release()]);
    }
    const evs = await events(id);
    expect(evs.filter((e) => e.type === 'done')).toEqual([{ type: 'done', status: 'succeeded' }]);
    // the dead worker's attempt, then the retry's
    expect(evs.filter((e) => e.type === 'status' && e.status === 'processing')).toHaveLength(2);
    expect(second.metrics().jobsSucceeded).toBe(1);
    expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });
  });

  it('SIGTERM drains: the job in hand finishes, nothing new is taken, exit 0', async () => {
    const worker = await spawnWorker();
    const id = await h.submit(longTextInput(h.config, 60));
    await waitUntil(async () => (await h.predictions.get(id))!.value.status === 'processing', 30_000, 'the job to start');
    worker.child.kill('SIGTERM');
    await waitUntil(async () => worker.stderr.some((l) => l.includes('SIGTERM: draining')), 10_000, 'the drain to begin');
    const later = await h.submit({ prompt: 'after the drain', mode: 'text', maxNewTokens: 2 });
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect((await h.predictions.get(id))!.value.status).toBe('succeeded');
    expect((await h.predictions.get(later))!.value.status).toBe('starting');
    // the later job is left for the next worker, and is all that is left (the long poll the drain cut short
    // may have hidden it for one visibility timeout; local-aws-sqs then counts it twice, so no queueDepth here)
    const left: (string | undefined)[] = [];
    await waitUntil(async () => {
      left.push(...(await h.queue.receive(10, 0, { visibilitySeconds: 1 })).map((m) => m.job?.predictionId));
      return left.includes(later);
    }, 10_000, 'the later job back in the queue');
    expect(new Set(left)).toEqual(new Set([later]));
    expect((await h.queueDepth()).dead).toBe(0);
  });
});
