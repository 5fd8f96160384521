import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * Bad input, each answered with its status and `{error: {code, message, param}}` naming the
 * offending field — never a 500, never a job. Runs the real app on the real local stack (S3 +
 * SQS) with the fixture model's tokenizer and image processor.
 */
let h: ApiHarness;
let png: string; // a valid 16×16 PNG as a data URI

beforeAll(async () => {
  h = await startApiHarness();
  const bytes = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toBuffer();
  png = `data:image/png;base64,${bytes.toString('base64')}`;
});
afterAll(async () => h?.stop());

interface Case {
  name: string;
  path?: string;
  method?: string;
  body?: unknown;
  /** Sent as is instead of JSON.stringify(body). */
  raw?: string;
  headers?: Record<string, string>;
  status: number;
  param?: string | null;
  code?: string;
}

const input = (extra: Record<string, unknown>) => ({ input: { prompt: 'a cat', ...extra } });
const bias = (entries: number) => Object.fromEntries(Array.from({ length: entries }, (_, i) => [String(i + 4), 1]));

const CASES: Case[] = [
  // the body itself
  { name: 'not JSON (text/plain)', raw: 'hello', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' },
  { name: 'malformed JSON', raw: '{"input": ', status: 400, code: 'invalid_json' },
  { name: 'body over the limit', raw: JSON.stringify(input({ images: ['data:image/png;base64,' + 'A'.repeat(7 * 1024 * 1024)] })), status: 413, code: 'payload_too_large' },
  { name: 'no input', body: {}, status: 400, param: 'input' },
  { name: 'input not an object', body: { input: 'a cat' }, status: 400, param: 'input' },
  { name: 'unknown top-level field', body: { ...input({}), model: 'x' }, status: 400, param: 'model' },
  { name: 'unknown input field', body: input({ steps: 3 }), status: 400, param: 'input.steps' },
  { name: 'unknown sampling field', body: input({ sampling: { min_p: 0.1 } }), status: 400, param: 'input.sampling.min_p' },
  { name: 'prompt not a string', body: { input: { prompt: 42 } }, status: 400, param: 'input.prompt' },
  // values out of range
  { name: 'unknown mode', body: input({ mode: 'video' }), status: 422, param: 'input.mode' },
  { name: 'n = 0', body: input({ n: 0 }), status: 422, param: 'input.n' },
  { name: 'n over the limit', body: input({ n: 17 }), status: 422, param: 'input.n' },
  { name: 'n not an integer', body: input({ n: 1.5 }), status: 400, param: 'input.n' },
  { name: 'max_new_tokens = 0', body: input({ max_new_tokens: 0 }), status: 422, param: 'input.max_new_tokens' },
  { name: 'max_new_tokens over the context', body: input({ max_new_tokens: 5000 }), status: 422, param: 'input.max_new_tokens' },
  { name: 'prompt + max_new_tokens over the context (tokens)', body: input({ max_new_tokens: 4096 }), status: 422, param: 'input.max_new_tokens' },
  { name: 'prompt alone over the context (tokens)', body: { input: { prompt: 'cat '.repeat(5000) } }, status: 422, param: 'input.prompt' },
  { name: 'image mode with too few tokens for an image', body: input({ mode: 'image', max_new_tokens: 5 }), status: 422, param: 'input.max_new_tokens' },
  { name: 'temperature 0', body: input({ sampling: { temperature: 0 } }), status: 422, param: 'input.sampling.temperature' },
  { name: 'top_p > 1', body: input({ sampling: { top_p: 1.5 } }), status: 422, param: 'input.sampling.top_p' },
  { name: 'top_k negative', body: input({ sampling: { top_k: -1 } }), status: 422, param: 'input.sampling.top_k' },
  { name: 'top_k over the vocabulary', body: input({ sampling: { top_k: 70000 } }), status: 422, param: 'input.sampling.top_k' },
  { name: 'seed negative', body: input({ sampling: { seed: -1 } }), status: 422, param: 'input.sampling.seed' },
  { name: 'repetition_penalty < 1', body: input({ sampling: { repetition_penalty: 0.5 } }), status: 422, param: 'input.sampling.repetition_penalty' },
  { name: 'guidance < 1', body: input({ guidance: { text: 0.5 } }), status: 422, param: 'input.guidance.text' },
  // logit_bias (issue 8)
  { name: 'logit_bias: key not a token id', body: input({ logit_bias: { boi: 5 } }), status: 400, param: 'input.logit_bias.boi' },
  { name: 'logit_bias: bias over 100', body: input({ logit_bias: { '8197': 150 } }), status: 422, param: 'input.logit_bias.8197' },
  { name: 'logit_bias: bias under -100', body: input({ logit_bias: { '5': -100.5 } }), status: 422, param: 'input.logit_bias.5' },
  { name: 'logit_bias: bias not a number', body: input({ logit_bias: { '5': '3' } }), status: 400, param: 'input.logit_bias.5' },
  { name: 'logit_bias: id outside the vocabulary', body: input({ logit_bias: { '5': 1, '65536': 2 } }), status: 422, param: 'input.logit_bias.65536' },
  { name: 'logit_bias: 301 entries', body: input({ logit_bias: bias(301) }), status: 422, param: 'input.logit_bias' },
  // images
  { name: 'too many images', body: input({ images: new Array(9).fill('https://example.com/a.png') }), status: 422, param: 'input.images' },
  { name: 'image neither URL, data URI nor upload id', body: input({ images: ['ftp://example.com/a.png'] }), status: 422, param: 'input.images[0]' },
  { name: 'image data URI not base64', body: input({ prompt: '<image>', images: ['data:image/png,rawbytes'] }), status: 422, param: 'input.images[0]' },
  { name: 'image data URI not an image', body: { input: { prompt: '<image>', images: [`data:image/png;base64,${Buffer.from('not a png at all').toString('base64')}`] } }, status: 415, param: 'input.images[0]' },
  { name: 'unknown upload id', body: { input: { prompt: '<image>', images: ['up_aaaaaaaaaaaaaaaaaaaaaaaaaa'] } }, status: 422, param: 'input.images[0]', code: 'unknown_upload' },
  { name: 'image URL over plain http', body: { input: { prompt: '<image>', images: ['http://example.com/a.png'] } }, status: 422, param: 'input.images[0]', code: 'image_url_refused' },
  { name: 'image URL on loopback', body: { input: { prompt: '<image>', images: ['https://127.0.0.1/a.png'] } }, status: 422, param: 'input.images[0]', code: 'image_url_refused' },
  { name: 'image URL at the metadata endpoint', body: { input: { prompt: '<image>', images: ['https://169.254.169.254/latest/meta-data'] } }, status: 422, param: 'input.images[0]', code: 'image_url_refused' },
  // webhooks and headers
  { name: 'webhook over plain http', body: { ...input({}), webhook: 'http://example.com/hook' }, status: 422, param: 'webhook' },
  { name: 'webhook on a private address', body: { ...input({}), webhook: 'https://10.0.0.5/hook' }, status: 422, param: 'webhook' },
  { name: 'unknown webhook event', body: { ...input({}), webhook_events_filter: ['finished'] }, status: 422, param: 'webhook_events_filter[0]' },
  { name: 'Cancel-After not a duration', body: input({}), headers: { 'cancel-after': 'soon' }, status: 400, param: 'Cancel-After' },
  { name: 'Cancel-After zero', body: input({}), headers: { 'cancel-after': '0s' }, status: 422, param: 'Cancel-After' },
  { name: 'Idempotency-Key with spaces', body: input({}), headers: { 'idempotency-key': 'a key' }, status: 400, param: 'Idempotency-Key' },
];

const OTHER: Case[] = [
  { name: 'unknown prediction', method: 'GET', path: '/v1/predictions/aaaaaaaaaaaaaaaaaaaaaaaaaa', status: 404 },
  { name: 'prediction id with odd characters', method: 'GET', path: '/v1/predictions/..%2Fstatus', status: 404 },
  { name: 'cancel an unknown prediction', path: '/v1/predictions/aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel', raw: '', status: 404 },
  { name: 'unknown route', method: 'GET', path: '/v1/engines', status: 404 },
  { name: 'another model', method: 'GET', path: '/v1/models/someone/other-model', status: 404, param: 'model' },
  { name: 'predictions of another model', path: '/v1/models/someone/other-model/predictions', body: input({}), status: 404, param: 'model' },
  { name: 'list: limit 0', method: 'GET', path: '/v1/predictions?limit=0', status: 422, param: 'limit' },
  { name: 'list: limit not a number', method: 'GET', path: '/v1/predictions?limit=ten', status: 400, param: 'limit' },
  { name: 'list: unknown query field', method: 'GET', path: '/v1/predictions?status=failed', status: 400, param: 'status' },
  { name: 'list: forged cursor', method: 'GET', path: `/v1/predictions?cursor=${Buffer.from('owners/someone-else/0-x').toString('base64url')}`, status: 422, param: 'cursor' },
  { name: 'upload: content type not an image', path: '/v1/uploads', body: { content_type: 'text/plain' }, status: 422, param: 'content_type' },
  { name: 'upload: no content type', path: '/v1/uploads', body: {}, status: 400, param: 'content_type' },
  { name: 'images: another size', path: '/v1/images/generations', body: { prompt: 'a cat', size: '256x256' }, status: 422, param: 'size' },
  { name: 'images: unknown response_format', path: '/v1/images/generations', body: { prompt: 'a cat', response_format: 'png' }, status: 422, param: 'response_format' },
  { name: 'images: unknown field', path: '/v1/images/generations', body: { prompt: 'a cat', background: 'transparent' }, status: 400, param: 'background' },
  { name: 'images: a quality OpenAI does not know', path: '/v1/images/generations', body: { prompt: 'a cat', quality: 'ultra' }, status: 422, param: 'quality' },
  { name: 'chat: five stop strings', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: 'hi' }], stop: ['a', 'b', 'c', 'd', 'e'] }, status: 422, param: 'stop' },
  { name: 'chat: presence_penalty over 2', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: 'hi' }], presence_penalty: 2.5 }, status: 422, param: 'presence_penalty' },
  { name: 'images: empty prompt', path: '/v1/images/generations', body: { prompt: '' }, status: 422, param: 'prompt' },
  { name: 'images: n over the limit', path: '/v1/images/generations', body: { prompt: 'a cat', n: 17 }, status: 422, param: 'n' },
  { name: 'chat: no model', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 'hi' }] }, status: 400, param: 'model' },
  { name: 'chat: no messages', path: '/v1/chat/completions', body: { model: 'anole', messages: [] }, status: 422, param: 'messages' },
  { name: 'chat: unknown role', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'tool', content: 'hi' }] }, status: 422, param: 'messages[0].role' },
  { name: 'chat: unknown part type', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: [{ type: 'audio', audio: {} }] }] }, status: 400, param: 'messages[0].content[0].type' },
  { name: 'chat: temperature over 2', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: 'hi' }], temperature: 3 }, status: 422, param: 'temperature' },
  { name: 'chat: max_tokens over the context', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4096 }, status: 422, param: 'max_tokens' },
  { name: 'chat: logit_bias id outside the vocabulary', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: 'hi' }], logit_bias: { '70000': 1 } }, status: 422, param: 'logit_bias.70000' },
  { name: 'chat: logit_bias bias out of range', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: 'hi' }], logit_bias: { '5': 101 } }, status: 422, param: 'logit_bias.5' },
  { name: 'chat: logit_bias 301 entries', path: '/v1/chat/completions', body: { model: 'anole', messages: [{ role: 'user', content: 'hi' }], logit_bias: bias(301) }, status: 422, param: 'logit_bias' },
  {
    name: 'chat: image on loopback',
    path: '/v1/chat/completions',
    body: { model: 'anole', messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: 'https://localhost/x.png' } }] }] },
    status: 422,
    param: 'messages[0].content[1].image_url.url',
  },
];

async function send(c: Case): Promise<Response> {
  const method = c.method ?? 'POST';
  const body = method === 'GET' ? undefined : (c.raw ?? JSON.stringify(c.body));
  return h.app.request(c.path ?? '/v1/predictions', { method, body, headers: { 'content-type': 'application/json', ...c.headers } });
}

describe('bad input is a 4xx naming the field, and creates nothing', () => {
  it.each([...CASES, ...OTHER].map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const res = await send(c);
    const body = await res.json();
    expect({ status: res.status, body }).toMatchObject({ status: c.status });
    expect(Object.keys(body)).toEqual(['error']);
    expect(typeof body.error.code).toBe('string');
    expect(body.error.message.length).toBeGreaterThan(0);
    if (c.param !== undefined) expect(body.error.param).toBe(c.param);
    if (c.code !== undefined) expect(body.error.code).toBe(c.code);
  });

  it('none of them queued a job', async () => {
    expect(await h.queue.receive(10, 0)).toEqual([]);
  });
});

describe('limits from the configuration', () => {
  it('an image over the pixel limit is 413 before it is decoded', async () => {
    const app = h.makeApp({ limits: { image: { maxBytes: 1 << 20, maxPixels: 15 * 15, timeoutMs: 1000, maxRedirects: 0 } } });
    const res = await app.request('/v1/predictions', { method: 'POST', body: JSON.stringify({ input: { prompt: '<image>', images: [png] } }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatchObject({ code: 'image_too_large', param: 'input.images[0]' });
  });

  it('an image over the byte limit is 413', async () => {
    const app = h.makeApp({ limits: { image: { maxBytes: 20, maxPixels: 1 << 20, timeoutMs: 1000, maxRedirects: 0 } } });
    const res = await app.request('/v1/predictions', { method: 'POST', body: JSON.stringify({ input: { prompt: '<image>', images: [png] } }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(413);
    expect((await res.json()).error.param).toBe('input.images[0]');
  });

  it('an image without its <image> marker is 422', async () => {
    const res = await send({ name: '', body: { input: { prompt: 'no marker', images: [png] } }, status: 422 });
    expect(res.status).toBe(422);
    expect((await res.json()).error.param).toBe('input.images');
  });

  it('the same valid requests are accepted (so the table above is not refusing everything)', async () => {
    const ok = [
      input({}),
      input({ logit_bias: bias(300), sampling: { temperature: 10, top_p: 1, top_k: 65536, seed: 2 ** 31 - 1, repetition_penalty: 10 }, guidance: { text: 20, image: 1 } }),
      input({ logit_bias: { '8197': 100, '5': -100 }, mode: 'interleaved', n: 16 }),
      { input: { prompt: 'what is <image>?', images: [png] }, webhook: 'https://93.184.215.14/hook', webhook_events_filter: ['completed'] },
    ];
    for (const body of ok) {
      const res = await h.app.request('/v1/predictions', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', 'cancel-after': '1h30m' } });
      expect(res.status, JSON.stringify(await res.clone().json())).toBe(201);
    }
    const queued = await h.queue.receive(10, 1);
    expect(queued).toHaveLength(ok.length);
    await Promise.all(queued.map((m) => h.queue.delete(m.receiptHandle)));
  });

  it('a job longer than the workers\' cache slots (ANOLE_MAX_CONTEXT) is 422 at creation, naming that length', async () => {
    const app = h.makeApp({ contextLength: 300 });
    const post = (maxNewTokens: number) =>
      app.request('/v1/predictions', { method: 'POST', body: JSON.stringify({ input: { prompt: 'hello', max_new_tokens: maxNewTokens } }), headers: { 'content-type': 'application/json' } });
    const refused = await post(300);
    expect(refused.status).toBe(422);
    const { error } = await refused.json();
    expect(error.param).toBe('input.max_new_tokens');
    expect(error.message).toMatch(/with max_new_tokens 300 it exceeds the context length 300/);
  });
});

describe('GET /openapi.json', () => {
  it('is generated from the schemas that validate the requests', async () => {
    const res = await h.app.request('/openapi.json');
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/healthz',
        '/v1/chat/completions',
        '/v1/images/generations',
        '/v1/models',
        '/v1/models/{owner}/{name}',
        '/v1/models/{owner}/{name}/predictions',
        '/v1/deployments/{owner}/{name}/predictions',
        '/v1/predictions',
        '/v1/predictions/{id}',
        '/v1/predictions/{id}/cancel',
        '/v1/predictions/{id}/stream',
        '/v1/uploads',
      ].sort(),
    );
    const s = doc.components.schemas;
    // the bounds the table above hits are the ones the document states
    expect(s.PredictionInput.additionalProperties).toBe(false);
    expect(s.PredictionInput.properties.n).toMatchObject({ minimum: 1, maximum: 16 });
    expect(s.PredictionInput.properties.images.maxItems).toBe(8);
    expect(s.Mode.enum).toEqual(['text', 'image', 'interleaved']);
    expect(s.LogitBias).toMatchObject({ maxProperties: 300, additionalProperties: { type: 'number', minimum: -100, maximum: 100 } });
    expect(s.Sampling.properties.top_p).toMatchObject({ exclusiveMinimum: 0, maximum: 1 });
    expect(doc.paths['/v1/predictions'].post.requestBody.content['application/json'].schema.$ref).toBe('#/components/schemas/CreatePrediction');
    expect(Object.keys(doc.paths['/v1/predictions'].post.responses).sort()).toEqual(['201', '202', '400', '401', '409', '413', '415', '422']);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('/healthz answers without a key', async () => {
    const app = h.makeApp({ apiKeys: ['secret'] });
    expect(await (await app.request('/healthz')).json()).toEqual({ status: 'ok' });
    expect((await app.request('/openapi.json')).status).toBe(200);
  });
});

describe('when storage is down', () => {
  it('answers 503 with Retry-After (not a 500, not a 4xx), and works again once it is back', async () => {
    await h.stack.s3Front.stop();
    try {
      for (const [path, init] of [
        ['/v1/predictions', { method: 'POST', body: JSON.stringify(input({})) }],
        ['/v1/predictions/aaaaaaaaaaaaaaaaaaaaaaaaaa', { method: 'GET' }],
        ['/v1/predictions', { method: 'GET' }],
      ] as const) {
        const res = await h.app.request(path, { ...init, headers: { 'content-type': 'application/json' } });
        expect(res.status, `${init.method} ${path}`).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect((await res.json()).error.code).toBe('service_unavailable');
      }
    } finally {
      await h.stack.s3Front.start();
    }
    const res = await send({ name: '', body: input({}), status: 201 });
    expect(res.status).toBe(201);
    const [message] = await h.queue.receive(10, 1);
    expect(message.job!.predictionId).toBe((await res.json()).id); // only the request made after the outage was queued
    await h.queue.delete(message.receiptHandle);
  });
});
