import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressPolicy } from '../contract/address-policy.ts';
import { readSse, startServiceHarness, type ServiceHarness } from './api-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * End to end over real HTTP: the API (@hono/node-server) and the real worker (sidecar/worker,
 * the fixture model on ONNX Runtime) on the real local stack (S3 with conditional writes, SQS).
 * Nothing is stubbed: every prediction below is generated, stored as PNGs and read back through
 * presigned URLs. The fixture model makes 64×64 images of 16 tokens (a 4×4 grid).
 */
const POLICY: AddressPolicy = { allowHttp: true, allowedAddresses: ['127.0.0.1'] }; // the image and webhook servers live on loopback
let h: ServiceHarness;
let files: http.Server;
let filesUrl: string;
let inputPng: Buffer;
const hooks: { id: string; body: Record<string, unknown>; verified: boolean }[] = [];

beforeAll(async () => {
  h = await startServiceHarness({ policy: POLICY });
  inputPng = await sharp({ create: { width: 80, height: 60, channels: 4, background: { r: 30, g: 90, b: 200, alpha: 0.5 } } }).png().toBuffer();
  // one loopback server: an image host and a webhook receiver that verifies signatures
  const signer = new Webhook(h.worker.webhookSecret);
  files = http.createServer((req, res) => {
    if (req.method === 'GET') return res.writeHead(200, { 'content-type': 'image/png' }).end(inputPng);
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString();
      let verified = false;
      try {
        signer.verify(raw, req.headers as Record<string, string>);
        verified = true;
      } catch {
        verified = false;
      }
      hooks.push({ id: String(req.headers['webhook-id']), body: JSON.parse(raw), verified });
      res.writeHead(verified ? 204 : 401).end();
    });
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', () => r()));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => files?.close(r));
  await h?.stop();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${h.api.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const get = async (path: string) => (await fetch(path.startsWith('http') ? path : `${h.api.url}${path}`)).json();

async function poll(id: string, done: (p: { status: string }) => boolean = (p) => ['succeeded', 'failed', 'canceled', 'aborted'].includes(p.status)) {
  const until = Date.now() + 30_000;
  for (;;) {
    const p = await get(`/v1/predictions/${id}`);
    if (done(p) || Date.now() > until) return p;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An output image part: fetched through its presigned URL, a PNG of the stated size. */
async function checkImage(part: { url: string; width: number; height: number }): Promise<void> {
  const res = await fetch(part.url);
  expect(res.status).toBe(200);
  const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
  expect([meta.format, meta.width, meta.height]).toEqual(['png', part.width, part.height]);
  expect([part.width, part.height]).toEqual([64, 64]);
}

describe('predictions end to end', () => {
  it('text, synchronously (Prefer: wait)', async () => {
    const res = await post('/v1/predictions', { input: { prompt: 'Once upon a time', max_new_tokens: 6, sampling: { seed: 1 } } }, { prefer: 'wait=30' });
    expect(res.status).toBe(201);
    expect(res.headers.get('preference-applied')).toBe('wait=30');
    const p = await res.json();
    expect(p.status).toBe('succeeded');
    expect(p.output).toHaveLength(1);
    expect(p.output[0]).toMatchObject({ type: 'text', sequence: 0, text: expect.any(String) });
    expect(p.metrics.generated_tokens).toBeGreaterThan(0);
    expect(p.metrics.generated_tokens).toBeLessThanOrEqual(6);
    expect(p.started_at).not.toBeNull();
  });

  it('two images, asynchronously with polling', async () => {
    const res = await post('/v1/predictions', { input: { prompt: 'a red square', mode: 'image', n: 2, sampling: { seed: 5 } } });
    expect(res.status).toBe(201);
    const created = await res.json();
    expect(created.status).toBe('starting');
    const p = await poll(created.id);
    expect(p.status).toBe('succeeded');
    expect(p.output.map((o: { type: string; sequence: number }) => [o.type, o.sequence])).toEqual([
      ['image', 0],
      ['image', 1],
    ]);
    for (const part of p.output) await checkImage(part);
    expect(Date.parse(p.output[0].expires_at)).toBeGreaterThan(Date.now());
  });

  it('interleaved: a bias on boi makes images inside the text', async () => {
    const boi = h.config.boiTokenId;
    const res = await post(
      '/v1/predictions',
      { input: { prompt: 'a story with pictures', mode: 'interleaved', max_new_tokens: 2 * 18 + 4, logit_bias: { [boi]: 100 }, sampling: { seed: 2 } } },
      { prefer: 'wait=30' },
    );
    const p = await res.json();
    expect(p.status).toBe('succeeded');
    const images = p.output.filter((o: { type: string }) => o.type === 'image');
    expect(images).toHaveLength(2); // the budget holds two images of boi + 16 + eoi
    for (const part of images) await checkImage(part);
  });

  it('image plus text to image: an upload, a URL and a data URI as inputs', async () => {
    const upload = await (await post('/v1/uploads', { content_type: 'image/png' })).json();
    expect((await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: new Uint8Array(inputPng) })).status).toBe(200);
    const dataUri = `data:image/png;base64,${inputPng.toString('base64')}`;
    const res = await post(
      '/v1/predictions',
      { input: { prompt: 'mix <image> with <image> and <image>', images: [upload.upload_id, `${filesUrl}/in.png`, dataUri], mode: 'image', sampling: { seed: 9 } } },
      { prefer: 'wait=30' },
    );
    const p = await res.json();
    expect(p.status).toBe('succeeded');
    expect(p.input.images).toHaveLength(3);
    expect(p.output).toHaveLength(1);
    await checkImage(p.output[0]);
  });

  it('streams events that add up to the final output, and signs webhooks', async () => {
    const res = await post('/v1/predictions', {
      input: { prompt: 'stream and tell', mode: 'interleaved', max_new_tokens: 30, logit_bias: { [h.config.boiTokenId]: 5 }, sampling: { seed: 4 } },
      webhook: `${filesUrl}/hook`,
      webhook_events_filter: ['start', 'completed'],
    });
    const { id } = await res.json();
    const events = [];
    for await (const e of readSse(await fetch(`${h.api.url}/v1/predictions/${id}/stream`))) events.push({ type: e.event, data: JSON.parse(e.data) });
    expect(events.at(-1)).toEqual({ type: 'done', data: { status: 'succeeded' } });
    const p = await get(`/v1/predictions/${id}`);
    const streamedText = events.filter((e) => e.type === 'text').map((e) => e.data.delta).join('');
    const outputText = p.output.filter((o: { type: string }) => o.type === 'text').map((o: { text: string }) => o.text).join('');
    expect(streamedText).toBe(outputText);
    expect(events.filter((e) => e.type === 'image').length).toBe(p.output.filter((o: { type: string }) => o.type === 'image').length);

    await waitUntil(() => hooks.filter((x) => x.body.id === id).length >= 2, 10_000, 'both webhooks');
    const mine = hooks.filter((x) => x.body.id === id);
    expect(mine.map((x) => [x.body.status, x.verified])).toEqual([
      ['processing', true],
      ['succeeded', true],
    ]);
    expect(new Set(mine.map((x) => x.id)).size).toBe(2);
    expect(mine[1].body).toMatchObject({ id, urls: { get: `${h.api.url}/v1/predictions/${id}` } });
  });

  it('cancels a running prediction; cancel is idempotent', async () => {
    const { id } = await (
      await post('/v1/predictions', { input: { prompt: 'a very long story', max_new_tokens: 2000, logit_bias: { [h.config.eosTokenId]: -100 }, sampling: { seed: 3 } } })
    ).json();
    await poll(id, (p) => p.status === 'processing');
    const first = await (await post(`/v1/predictions/${id}/cancel`, {})).json();
    expect(first.status).toBe('processing'); // asked; the worker stops at its next chunk
    const p = await poll(id);
    expect(p.status).toBe('canceled');
    expect(p.metrics.generated_tokens).toBeLessThan(2000);
    const again = await post(`/v1/predictions/${id}/cancel`, {});
    expect(again.status).toBe(200);
    expect((await again.json()).status).toBe('canceled');
  });

  it('aborts a prediction whose Cancel-After passed before it started', async () => {
    const res = await post('/v1/predictions', { input: { prompt: 'too late', max_new_tokens: 4 } }, { 'cancel-after': '1ms' });
    const p = await poll((await res.json()).id);
    expect(p.status).toBe('aborted');
    expect(p.output).toBeNull();
    expect(p.started_at).toBeNull();
  });
});

describe('OpenAI-compatible endpoints end to end', () => {
  it('images/generations as URLs and as base64', async () => {
    const asUrls = await post('/v1/images/generations', { prompt: 'a blue circle', n: 2, size: '64x64' });
    expect(asUrls.status).toBe(200);
    const urls = await asUrls.json();
    expect(urls.data).toHaveLength(2);
    for (const d of urls.data) await checkImage({ url: d.url, width: 64, height: 64 });

    const asB64 = await (await post('/v1/images/generations', { prompt: 'a blue circle', response_format: 'b64_json' })).json();
    expect(asB64.data).toHaveLength(1);
    const meta = await sharp(Buffer.from(asB64.data[0].b64_json, 'base64')).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);
  });

  it('chat/completions: image parts in, text out; streamed and whole agree', async () => {
    const request = {
      model: 'anole-tiny',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'What is in ' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${inputPng.toString('base64')}` } }] },
      ],
      max_tokens: 6,
      temperature: 0,
    };
    const whole = await (await post('/v1/chat/completions', request)).json();
    expect(whole).toMatchObject({ object: 'chat.completion', model: 'anole-tiny', choices: [{ index: 0, message: { role: 'assistant' } }] });
    expect(['stop', 'length']).toContain(whole.choices[0].finish_reason);
    expect(whole.usage.prompt_tokens).toBeGreaterThan(16); // the image alone is 16 tokens
    expect(whole.usage.completion_tokens).toBeGreaterThan(0);

    const streamed = await post('/v1/chat/completions', { ...request, stream: true });
    let content = '';
    let done = false;
    for await (const e of readSse(streamed)) {
      if (e.data === '[DONE]') done = true;
      else content += JSON.parse(e.data).choices[0]?.delta?.content ?? '';
    }
    expect(done).toBe(true);
    expect(content).toBe(whole.choices[0].message.content); // greedy: the same text both ways
  });
});

