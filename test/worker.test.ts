import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredictionEvent, PredictionRecord } from '../contract/prediction.ts';
import { startHealthServer } from '../sidecar/worker/health-server.ts';
import { generateWebhookSecret, webhookId, WebhookSender } from '../sidecar/worker/webhooks.ts';
import { JobWorker, type WorkerOptions } from '../sidecar/worker/job-worker.ts';
import { loadModel, type LoadedModel } from '../sidecar/worker/load-model.ts';
import { longTextInput, startHarness, whileRunning, type Harness } from './worker-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * The worker end to end on the real engine (a tiny random model), real local S3 (s3rver behind
 * the conditional-write front) and real local SQS: batching, outputs and the event log,
 * exactly-once results under duplicate delivery and two workers, cancellation, deadlines, failing
 * jobs, an S3 outage mid-job, signed webhooks with retries, health and metrics.
 */
let h: Harness;
let model: LoadedModel;
const secret = generateWebhookSecret();

beforeAll(async () => {
  h = await startHarness({ visibilityTimeoutSeconds: 3, maxReceiveCount: 4, queueName: 'worker-test' });
  model = await loadModel(h.modelDir);
});
afterAll(async () => {
  await Promise.all([model?.generator.release(), model?.codec.release()]);
  await h?.close();
});

const FAST: WorkerOptions = { waitSeconds: 1, batchWindowMs: 50, visibilitySeconds: 3, cancelPollMs: 100, maxAttempts: 3 }; // one short of the queue's maxReceiveCount

/** Runs `body` with a worker on the queue, then drains it (and checks nothing is left behind). */
async function withWorker<T>(opts: WorkerOptions, body: (w: JobWorker) => Promise<T>, loaded: LoadedModel = model): Promise<T> {
  const worker = new JobWorker({ model: loaded, store: h.blobs, queue: h.queue, webhooks: new WebhookSender({ secret, baseDelayMs: 50 }) }, { ...FAST, ...opts });
  return whileRunning(worker, body);
}

const finished = (r: PredictionRecord) => ['succeeded', 'failed', 'canceled', 'aborted'].includes(r.status);
const events = async (id: string): Promise<PredictionEvent[]> => (await h.predictions.readEvents(id)).map((e) => e.event);
const textOf = (evs: PredictionEvent[], sequence = 0) => evs.filter((e) => e.type === 'text' && e.sequence === sequence).map((e) => (e as { delta: string }).delta).join('');
/** The events of the last attempt: a retry starts with another `processing`. */
const lastAttempt = (evs: PredictionEvent[]) => evs.slice(evs.map((e) => e.type === 'status' && e.status === 'processing').lastIndexOf(true));

describe('worker', () => {
  it('runs text, image, interleaved and image-to-image jobs as one batch, with PNGs, previews and events', async () => {
    const eos = { [h.config.eosTokenId]: -100 };
    const photo = await sharp({ create: { width: 96, height: 80, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toBuffer();
    const ids = {
      text: await h.submit({ prompt: 'hello', mode: 'text', maxNewTokens: 12, sampling: { seed: 1 }, logitBias: eos }),
      image: await h.submit({ prompt: 'a red square', mode: 'image', sampling: { seed: 2 } }),
      interleaved: await h.submit({ prompt: 'a story with a picture', mode: 'interleaved', maxNewTokens: 40, sampling: { seed: 3 }, logitBias: { [h.config.boiTokenId]: 50 } }),
      edit: await h.submit({ prompt: '<image> now in blue', images: [photo], mode: 'image', sampling: { seed: 4 }, n: 2 }),
    };
    await withWorker({ maxBatch: 4, batchWindowMs: 500, previewEveryRows: 2 }, async (worker) => {
      const health = await startHealthServer(worker);
      try {
        const records = Object.fromEntries(await Promise.all(Object.entries(ids).map(async ([k, id]) => [k, await h.waitFor(id, finished)] as const)));
        for (const r of Object.values(records)) {
          expect(r.status, `${r.id}: ${r.error}`).toBe('succeeded');
          expect(r.started_at && r.completed_at && r.started_at <= r.completed_at).toBe(true);
          expect(r.metrics.predict_time).toBeGreaterThan(0);
        }
        // the whole batch went through one generate call
        await waitUntil(async () => worker.metrics().jobsSucceeded === 4 && worker.metrics().inFlight === 0, 5000, 'the metrics');
        expect(worker.metrics()).toMatchObject({ batches: 1, jobsSucceeded: 4, jobsFailed: 0, inFlight: 0, queueWaitMs: { count: 4 } });

        // text: the record's text is the streamed deltas; 12 tokens since end-of-sequence was forbidden
        await waitUntil(async () => (await Promise.all(Object.values(ids).map(events))).every((evs) => evs.at(-1)?.type === 'done'), 5000, 'the done events');
        const textEvents = await events(ids.text);
        expect(records.text.metrics.generated_tokens).toBe(12);
        // why each sequence ended, for the OpenAI shims' finish_reason
        expect(records.text.metrics.finish_reasons).toEqual(['length']);
        expect(records.image.metrics.finish_reasons).toEqual(['image']);
        expect(records.edit.metrics.finish_reasons).toEqual(['image', 'image']);
        expect(records.text.output).toEqual([[{ type: 'text', text: textOf(textEvents) }]]);
        expect(textEvents[0]).toEqual({ type: 'status', status: 'processing' });
        expect(textEvents.slice(-2)).toEqual([{ type: 'status', status: 'succeeded' }, { type: 'done', status: 'succeeded' }]);

        // image: one 64×64 PNG in S3 under the job's output prefix, announced by an image event, previews on the way
        for (const [name, n] of [['image', 1], ['edit', 2]] as const) {
          const r = records[name];
          expect(r.output).toHaveLength(n);
          const evs = await events(r.id);
          for (const [k, parts] of r.output!.entries()) {
            expect(parts).toEqual([{ type: 'image', key: `outputs/${r.id}/image-${k}-0.png`, width: 64, height: 64 }]);
            const png = await sharp(await h.blobs.get(`outputs/${r.id}/image-${k}-0.png`)).metadata();
            expect([png.format, png.width, png.height]).toEqual(['png', 64, 64]);
            expect(evs).toContainEqual({ type: 'image', sequence: k, image: 0, key: `outputs/${r.id}/image-${k}-0.png`, width: 64, height: 64 });
            const preview = evs.find((e) => e.type === 'image_rows' && e.sequence === k && e.preview_key);
            expect(preview).toMatchObject({ rows: 2, total_rows: 4 });
            const previewPng = await sharp(await h.blobs.get((preview as { preview_key: string }).preview_key)).metadata();
            expect([previewPng.width, previewPng.height]).toEqual([64, 32]);
          }
        }
        // the two sequences of one job use seeds s and s+1: different pictures
        expect(Buffer.from(await h.blobs.get(`outputs/${ids.edit}/image-0-0.png`)).equals(Buffer.from(await h.blobs.get(`outputs/${ids.edit}/image-1-0.png`)))).toBe(false);

        // interleaved: text and image parts in order, the image forced early by a boi bias
        const parts = records.interleaved.output![0];
        expect(parts.some((p) => p.type === 'image')).toBe(true);
        expect(parts.filter((p) => p.type === 'text').map((p) => (p as { text: string }).text).join('')).toBe(textOf(await events(ids.interleaved)));

        expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });

        const healthz = await fetch(`${health.url}/healthz`);
        expect([healthz.status, await healthz.json()]).toEqual([200, { status: 'running' }]);
        const metrics = await (await fetch(`${health.url}/metrics`)).text();
        expect(metrics).toContain('anole_jobs_total{status="succeeded"} 4');
        expect(metrics).toContain('anole_batches_total 1');
        const tokens = Object.values(records).reduce((n, r) => n + r.metrics.generated_tokens!, 0);
        expect(metrics).toContain(`anole_tokens_generated_total ${tokens}`);
        expect(metrics).toMatch(/anole_queue_wait_seconds_count 4\n/);
      } finally {
        await health.close();
      }
    });
  });

  it('records a job delivered twice, to two workers, exactly once', async () => {
    const second = await loadModel(h.modelDir);
    try {
      const id = await h.submit({ prompt: 'once', mode: 'image', sampling: { seed: 5 } });
      await h.queue.send({ predictionId: id, jobKey: `jobs/${id}.json` }); // SQS's at-least-once, made certain
      const [a, b] = await withWorker({}, (wa) =>
        withWorker({}, async (wb) => {
          await h.waitFor(id, finished);
          await waitUntil(async () => (await h.queueDepth()).queued === 0, 20_000, 'the duplicate to be dropped');
          return [wa.metrics(), wb.metrics()];
        }, second),
      );
      const record = await h.predictions.get(id);
      expect(record!.value.status).toBe('succeeded');
      expect(a.jobsSucceeded + b.jobsSucceeded).toBe(1);
      expect(a.messagesDropped + b.messagesDropped).toBeGreaterThanOrEqual(1);
      const evs = await events(id);
      expect(evs.filter((e) => e.type === 'done')).toHaveLength(1);
      expect(evs.filter((e) => e.type === 'image')).toHaveLength(1);
      expect(evs.filter((e) => e.type === 'status' && e.status === 'processing')).toHaveLength(1);
    } finally {
      await Promise.all([second.generator.release(), second.codec.release()]);
    }
  });

  it('stops a running job at cancel_requested: canceled, with the output so far', async () => {
    const id = await h.submit(longTextInput(h.config, 300));
    await withWorker({ chunkSize: 4 }, async (worker) => {
      await waitUntil(async () => (await events(id)).some((e) => e.type === 'text'), 20_000, 'the first text');
      await h.predictions.update(id, (r) => ({ ...r, cancel_requested: true }));
      const r = await h.waitFor(id, finished);
      expect(r.status).toBe('canceled');
      expect(r.metrics.generated_tokens).toBeGreaterThan(0);
      expect(r.metrics.generated_tokens).toBeLessThan(300);
      await waitUntil(async () => (await events(id)).at(-1)?.type === 'done', 5000, 'the done event');
      const evs = await events(id);
      expect(r.output).toEqual([[{ type: 'text', text: textOf(evs) }]]);
      expect(evs.slice(-2)).toEqual([{ type: 'status', status: 'canceled' }, { type: 'done', status: 'canceled' }]);
      expect(worker.metrics().jobsCanceled).toBe(1);
    });
    expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });
  });

  it('aborts a job whose deadline passed before it started, and cancels one canceled while queued', async () => {
    const late = await h.submit({ prompt: 'too late', mode: 'image' }, { deadline: new Date(Date.now() - 1000).toISOString() });
    const dropped = await h.submit({ prompt: 'never mind', mode: 'image' }, { cancel_requested: true });
    await withWorker({}, async (worker) => {
      const [a, c] = await Promise.all([h.waitFor(late, finished), h.waitFor(dropped, finished)]);
      expect([a.status, a.started_at, a.output]).toEqual(['aborted', null, null]);
      expect([c.status, c.started_at, c.output]).toEqual(['canceled', null, null]);
      // the record goes first, then the log: the log's end may trail it by a moment
      await waitUntil(async () => (await events(late)).length === 2 && (await events(dropped)).length === 2, 5000, 'the events');
      expect(await events(late)).toEqual([{ type: 'status', status: 'aborted' }, { type: 'done', status: 'aborted' }]);
      expect(await events(dropped)).toEqual([{ type: 'status', status: 'canceled' }, { type: 'done', status: 'canceled' }]);
      expect(worker.metrics()).toMatchObject({ jobsAborted: 1, jobsCanceled: 1, batches: 0 });
    });
    expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });
  });

  it('fails a job whose every run died with its worker, instead of leaving it unfinished in the dead-letter queue', async () => {
    const id = await h.submit({ prompt: 'poison', mode: 'text', maxNewTokens: 4 }, { status: 'processing', started_at: new Date().toISOString() });
    // three deliveries that never finish, as if each worker that took the job was killed mid-run
    // (counted by the queue: a previous worker's abandoned long poll may have taken one too)
    for (let delivered = 0; delivered < 3; ) delivered = (await h.queue.receive(1, 1, { visibilitySeconds: 0 }))[0]?.receiveCount ?? delivered;
    await withWorker({}, async (worker) => {
      const r = await h.waitFor(id, finished);
      expect(r.status).toBe('failed');
      expect(r.error).toMatch(/did not finish in 3 attempts: each time, the worker running it stopped/);
      await waitUntil(async () => (await events(id)).some((e) => e.type === 'done'), 5000, 'the done event');
      expect(await events(id)).toEqual([
        { type: 'error', message: r.error },
        { type: 'status', status: 'failed' },
        { type: 'done', status: 'failed' },
      ]);
      expect(worker.metrics()).toMatchObject({ jobsFailed: 1, batches: 0 });
    });
    expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });
  });

  it('fails a broken job with a clear error, while the good job in its batch succeeds', async () => {
    const photo = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).png().toBuffer();
    const broken = await h.submit({ prompt: '<image> describe', images: [photo], mode: 'text', maxNewTokens: 4 });
    await h.blobs.delete(`inputs/${broken}/image-0.f32`); // its prepared image is gone
    const good = await h.submit({ prompt: 'fine', mode: 'text', maxNewTokens: 4, sampling: { seed: 9 } });
    const noJob = await h.submit({ prompt: 'x', mode: 'text', maxNewTokens: 4 });
    await h.blobs.delete(`jobs/${noJob}.json`);
    await h.queue.sqs.send(new (await import('@aws-sdk/client-sqs')).SendMessageCommand({ QueueUrl: h.stack.queue.queueUrl, MessageBody: '{"not":"a job"}' }));

    await withWorker({ maxBatch: 3, batchWindowMs: 500 }, async (worker) => {
      const [b, g, n] = await Promise.all([broken, good, noJob].map((id) => h.waitFor(id, finished)));
      expect(b.status).toBe('failed');
      expect(b.error).toContain(`inputs/${broken}/image-0.f32`);
      expect(g.status).toBe('succeeded');
      expect(n.status).toBe('failed');
      expect(n.error).toContain(`jobs/${noJob}.json could not be read`);
      await waitUntil(async () => (await events(broken)).at(-1)?.type === 'done', 5000, 'the done event');
      const evs = await events(broken);
      expect(evs.slice(-3)).toEqual([{ type: 'error', message: b.error }, { type: 'status', status: 'failed' }, { type: 'done', status: 'failed' }]);
      await waitUntil(async () => (await h.queueDepth()).queued === 0, 10_000, 'the queue to empty');
      expect(worker.metrics()).toMatchObject({ jobsFailed: 2, jobsSucceeded: 1 });
      expect(worker.metrics().messagesDropped).toBeGreaterThanOrEqual(1);
    });
    expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });
  });

  it('survives an S3 outage mid-job: no half-written success, the job is retried and completes once', async () => {
    const id = await h.submit(longTextInput(h.config, 80));
    const seen: PredictionRecord[] = [];
    await withWorker({ visibilitySeconds: 2, chunkSize: 4 }, async (worker) => {
      await waitUntil(async () => (await events(id)).some((e) => e.type === 'text'), 20_000, 'the first text');
      await h.stack.s3Front.stop();
      await new Promise((r) => setTimeout(r, 1500));
      await h.stack.s3Front.start();
      const r = await h.waitFor(id, (x) => (seen.push(x), finished(x)), 40_000);
      expect(r.status).toBe('succeeded');
      expect(worker.metrics().jobsRetried).toBeGreaterThanOrEqual(1);
    });
    const evs = await events(id);
    expect(evs.filter((e) => e.type === 'done')).toEqual([{ type: 'done', status: 'succeeded' }]);
    expect(evs.filter((e) => e.type === 'status' && e.status === 'processing').length).toBeGreaterThanOrEqual(2);
    const final = seen[seen.length - 1];
    expect(final.metrics.generated_tokens).toBe(80);
    // the result is the retry's, whole: its own streamed text, all 80 tokens of it
    expect(final.output).toEqual([[{ type: 'text', text: textOf(lastAttempt(evs)) }]]);
    expect(seen.filter((x) => x.status === 'succeeded').every((x) => isDeepEqual(x.output, final.output))).toBe(true);
    expect(await h.queueDepth()).toEqual({ queued: 0, dead: 0 });
  });

  it('sends signed webhooks for the events asked for, retrying with the same webhook-id', async () => {
    const verifier = new Webhook(secret);
    const deliveries: { id: string; valid: boolean; body: { id: string; status: string } ; answered: number }[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const id = String(req.headers['webhook-id']);
        let valid = true;
        try {
          verifier.verify(body, req.headers as Record<string, string>);
        } catch {
          valid = false;
        }
        // each webhook's first delivery fails: the sender must come back with the same id
        const answered = deliveries.some((d) => d.id === id) ? 200 : 500;
        deliveries.push({ id, valid, body: JSON.parse(body), answered });
        res.writeHead(answered).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    try {
      const id = await h.submit({ prompt: 'notify me', mode: 'image', sampling: { seed: 11 } }, { webhook: url, webhook_events_filter: ['start', 'completed'] });
      const all = await h.submit({ prompt: 'tell me everything', mode: 'image', sampling: { seed: 12 } }, { webhook: url, webhook_events_filter: [] });
      await withWorker({}, async () => {
        await Promise.all([h.waitFor(id, finished), h.waitFor(all, finished)]);
        await waitUntil(async () => deliveries.filter((d) => d.answered === 200).length === 5, 10_000, 'the webhooks');
      });
      expect(deliveries.every((d) => d.valid)).toBe(true);
      const start = webhookId(id, 'start');
      const completed = webhookId(id, 'completed');
      const mine = deliveries.filter((d) => d.body.id === id);
      expect(mine.map((d) => [d.id, d.answered])).toEqual([
        [start, 500],
        [start, 200],
        [completed, 500],
        [completed, 200],
      ]);
      expect(mine.map((d) => d.body.status)).toEqual(['processing', 'processing', 'succeeded', 'succeeded']);
      // no filter: start, output (its image) and completed
      const everything = deliveries.filter((d) => d.body.id === all && d.answered === 200).map((d) => d.id);
      expect(new Set(everything)).toEqual(new Set([webhookId(all, 'start'), webhookId(all, 'output', 0), webhookId(all, 'completed')]));
      // the output webhook shows the output so far: its image, as a URL
      const output = deliveries.find((d) => d.id === webhookId(all, 'output', 0))!.body as unknown as { status: string; output: { type: string; url: string }[][] };
      expect(output.status).toBe('processing');
      expect(output.output[0]).toEqual([expect.objectContaining({ type: 'image', url: expect.stringContaining(`outputs/${all}/image-0-0.png`) })]);
      const done = deliveries.find((d) => d.id === webhookId(all, 'completed') && d.answered === 200)!.body as unknown as { output: { type: string; url: string }[][] };
      const png = await fetch(done.output[0][0].url);
      expect([png.status, (await sharp(Buffer.from(await png.arrayBuffer())).metadata()).width]).toEqual([200, 64]);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

function isDeepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
