import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PredictionEvent } from '../contract/prediction.ts';
import { serveApi, type ServedApi } from '../contract/serve-http.ts';
import { readSse, startApiHarness, type ApiHarness, type SseEvent } from './api-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * The event streams over real HTTP (@hono/node-server on a free port): GET /v1/predictions/{id}/stream
 * and chat completions with stream: true. The worker's side is played through the PredictionStore
 * exactly as the worker writes it (record transitions, then the event log), so the framing, the
 * order, resumption and the presigned URLs are what is checked here.
 */
let h: ApiHarness;
let api: ServedApi;
let png: Buffer;

beforeAll(async () => {
  h = await startApiHarness();
  api = await serveApi(h.app);
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#0a0' } }).png().toBuffer();
});
afterAll(async () => {
  await api?.close();
  await h?.stop();
});
afterEach(async () => {
  for (let got = await h.queue.receive(10, 0); got.length > 0; got = await h.queue.receive(10, 0)) await Promise.all(got.map((m) => h.queue.delete(m.receiptHandle)));
});

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${api.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
}

/** What the worker does to a record and its log. */
const worker = {
  start: (id: string) => h.predictions.update(id, (r) => ({ ...r, status: 'processing', started_at: new Date().toISOString() })),
  emit: (id: string, ...events: PredictionEvent[]) => events.reduce((p, e) => p.then(() => h.predictions.appendEvent(id, e)), Promise.resolve(0)),
  finish: (id: string, patch: object = {}) =>
    h.predictions.update(id, (r) => ({ ...r, status: 'succeeded', completed_at: new Date().toISOString(), ...patch })),
};

async function collect(res: Response, max = 100): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of readSse(res)) if (out.push(e) >= max) break;
  return out;
}

describe('GET /v1/predictions/{id}/stream', () => {
  it('sends the log as it is written, keys as presigned URLs, and ends after done', async () => {
    const { id } = await (await post('/v1/predictions', { input: { prompt: 'draw', mode: 'interleaved' } })).json();
    const res = await fetch(`${api.url}/v1/predictions/${id}/stream`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const received = collect(res);

    await h.store.put(`outputs/${id}/preview-0-0.png`, png, 'image/png');
    await h.store.put(`outputs/${id}/image-0-0.png`, png, 'image/png');
    await worker.start(id);
    await worker.emit(
      id,
      { type: 'status', status: 'processing' },
      { type: 'text', sequence: 0, delta: 'Here is ' },
      { type: 'text', sequence: 0, delta: 'a square:' },
      { type: 'image_rows', sequence: 0, image: 0, rows: 2, total_rows: 4, preview_key: `outputs/${id}/preview-0-0.png` },
      { type: 'image', sequence: 0, image: 0, key: `outputs/${id}/image-0-0.png`, width: 8, height: 8 },
    );
    await worker.finish(id, { output: [[{ type: 'text', text: 'Here is a square:' }, { type: 'image', key: `outputs/${id}/image-0-0.png`, width: 8, height: 8 }]] });
    await worker.emit(id, { type: 'status', status: 'succeeded' }, { type: 'done', status: 'succeeded' });

    const events = await received;
    expect(events.map((e) => [e.event, e.id])).toEqual([
      ['status', undefined], // the record as the stream opened
      ['status', '0'],
      ['text', '1'],
      ['text', '2'],
      ['image_rows', '3'],
      ['image', '4'],
      ['status', '5'],
      ['done', '6'],
    ]);
    const data = events.map((e) => JSON.parse(e.data));
    expect(data[0]).toEqual({ status: 'starting' });
    expect(data[2]).toEqual({ sequence: 0, delta: 'Here is ' });
    expect(data[4]).toMatchObject({ rows: 2, total_rows: 4, preview_url: expect.any(String), expires_at: expect.any(String) });
    expect(data[4].preview_key).toBeUndefined();
    expect(data[5]).toMatchObject({ sequence: 0, image: 0, width: 8, height: 8 });
    expect(data[5].key).toBeUndefined();
    expect(data[7]).toEqual({ status: 'succeeded' });

    // the bucket is private: only the presigned URL opens the object
    const image = await fetch(data[5].url);
    expect(image.status).toBe(200);
    expect(Buffer.from(await image.arrayBuffer())).toEqual(png);
    expect((await fetch(data[5].url.split('?')[0])).status).toBe(403);
    expect((await fetch(data[4].preview_url)).status).toBe(200);
  });

  it('resumes after Last-Event-ID', async () => {
    const { id } = await (await post('/v1/predictions', { input: { prompt: 'resume' } })).json();
    await worker.start(id);
    await worker.emit(id, { type: 'status', status: 'processing' }, { type: 'text', sequence: 0, delta: 'a' }, { type: 'text', sequence: 0, delta: 'b' });
    await worker.finish(id);
    await worker.emit(id, { type: 'text', sequence: 0, delta: 'c' }, { type: 'done', status: 'succeeded' });
    const events = await collect(await fetch(`${api.url}/v1/predictions/${id}/stream`, { headers: { 'last-event-id': '1' } }));
    expect(events.map((e) => [e.event, e.id, e.data])).toEqual([
      ['status', undefined, '{"status":"succeeded"}'],
      ['text', '2', '{"sequence":0,"delta":"b"}'],
      ['text', '3', '{"sequence":0,"delta":"c"}'],
      ['done', '4', '{"status":"succeeded"}'],
    ]);
  });

  it('ends a prediction that finished without a logged done (aborted before it started)', async () => {
    const { id } = await (await post('/v1/predictions', { input: { prompt: 'never runs' } })).json();
    const received = collect(await fetch(`${api.url}/v1/predictions/${id}/stream`));
    await h.predictions.update(id, (r) => ({ ...r, status: 'aborted', error: 'deadline', completed_at: new Date().toISOString() }));
    const events = await received;
    expect(events.map((e) => [e.event, e.id])).toEqual([
      ['status', undefined],
      ['error', undefined],
      ['done', undefined],
    ]);
    expect(JSON.parse(events[2].data)).toEqual({ status: 'aborted' });
  });
});

describe('POST /v1/chat/completions with stream: true', () => {
  const chat = (extra: object = {}) => post('/v1/chat/completions', { model: 'anole-tiny', messages: [{ role: 'user', content: 'hello' }], stream: true, ...extra });

  /** The prediction a streamed chat created: the newest one. */
  async function newestPrediction(): Promise<string> {
    const { results } = await (await fetch(`${api.url}/v1/predictions?limit=1`)).json();
    return results[0].id;
  }

  it('sends OpenAI chunks (role, deltas, finish_reason, usage) and [DONE]; a retried job does not repeat text', async () => {
    const res = await chat({ n: 2, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const received = collect(res);
    const id = await newestPrediction();
    await worker.start(id);
    await worker.emit(
      id,
      { type: 'status', status: 'processing' },
      { type: 'text', sequence: 0, delta: 'Hi' },
      { type: 'text', sequence: 1, delta: 'Yo' },
      { type: 'text', sequence: 0, delta: ' there' },
      // the worker died and the job ran again (same seed): the text starts over
      { type: 'status', status: 'processing' },
      { type: 'text', sequence: 0, delta: 'Hi th' },
      { type: 'text', sequence: 0, delta: 'ere!' },
      { type: 'text', sequence: 1, delta: 'Yo' },
    );
    await worker.finish(id, {
      output: [[{ type: 'text', text: 'Hi there!' }], [{ type: 'text', text: 'Yo' }]],
      metrics: { generated_tokens: 7, finish_reasons: ['length', 'eos'] },
    });
    await worker.emit(id, { type: 'done', status: 'succeeded' });

    const events = await received;
    expect(events.every((e) => e.event === undefined && e.id === undefined)).toBe(true); // data-only lines, as OpenAI sends
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    for (const c of chunks) expect(c).toMatchObject({ id: `chatcmpl-${id}`, object: 'chat.completion.chunk', model: 'anole-tiny', created: expect.any(Number) });
    const deltas = (k: number) => chunks.flatMap((c) => c.choices.filter((x: { index: number }) => x.index === k).map((x: { delta: { content?: string } }) => x.delta.content ?? ''));
    expect(deltas(0)).toEqual(['', 'Hi', ' there', '!', '']);
    expect(deltas(1)).toEqual(['', 'Yo', '']);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const finish = chunks.flatMap((c) => c.choices.filter((x: { finish_reason: string | null }) => x.finish_reason).map((x: { index: number; finish_reason: string }) => [x.index, x.finish_reason]));
    expect(finish).toEqual([
      [0, 'length'],
      [1, 'stop'],
    ]);
    const usage = chunks.at(-1);
    expect(usage.choices).toEqual([]);
    expect(usage.usage.completion_tokens).toBe(7);
    expect(usage.usage.prompt_tokens).toBeGreaterThan(1);
    expect(usage.usage.total_tokens).toBe(usage.usage.prompt_tokens + 7);
  });

  it('ends with an error chunk, and cancels, when a retry would contradict what was sent', async () => {
    const received = collect(await chat());
    const id = await newestPrediction();
    await worker.start(id);
    await worker.emit(
      id,
      { type: 'status', status: 'processing' },
      { type: 'text', sequence: 0, delta: 'Hello' },
      { type: 'status', status: 'processing' },
      { type: 'text', sequence: 0, delta: 'Howdy' },
    );
    const events = await received;
    expect(events.at(-1)!.data).toBe('[DONE]');
    const error = JSON.parse(events.at(-2)!.data);
    expect(error.error.message).toMatch(/retried/);
    expect(events.filter((e) => e.data.includes('Howdy'))).toEqual([]);
    expect((await h.predictions.get(id))!.value.cancel_requested).toBe(true);
  });

  it('a client that hangs up cancels the prediction', async () => {
    const res = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'bye' }], stream: true });
    const id = await newestPrediction();
    const reader = res.body!.getReader();
    await reader.read(); // the role chunk: the stream is open
    await reader.cancel();
    await waitUntil(async () => (await h.predictions.get(id))!.value.cancel_requested, 5000, 'the cancel request');
    expect((await h.predictions.get(id))!.value.cancel_requested).toBe(true);
  });
});
