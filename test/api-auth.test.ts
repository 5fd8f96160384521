import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchKey, ownerOf } from '../functions/api/auth.ts';
import { createHash } from 'node:crypto';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/** Bearer keys, and what a key may see: only its own predictions and uploads. Real app, real local S3/SQS. */
let h: ApiHarness;
let app: ApiHarness['app'];
const A = 'key-alice-0123456789';
const B = 'key-bob-9876543210';

beforeAll(async () => {
  h = await startApiHarness();
  app = h.makeApp({ apiKeys: [A, B] });
});
afterAll(async () => h?.stop());

const call = (path: string, key: string | null, init: { method?: string; body?: unknown } = {}) =>
  app.request(path, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
  });

describe('API keys', () => {
  it('refuses a request without a key, with a wrong key, or with another scheme', async () => {
    for (const [headers, why] of [
      [{}, 'missing'],
      [{ authorization: 'Bearer key-alice-012345678' }, 'invalid'],
      [{ authorization: `Basic ${Buffer.from(`x:${A}`).toString('base64')}` }, 'missing'],
    ] as const) {
      const res = await app.request('/v1/predictions', { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect((await res.json()).error).toMatchObject({ code: 'unauthorized', message: expect.stringContaining(why) });
    }
    expect((await call('/v1/predictions', A)).status).toBe(200);
  });

  it('compares against every configured key and derives owners that do not reveal the key', () => {
    const digests = [A, B].map((k) => createHash('sha256').update(k).digest());
    expect(matchKey(A, digests)).toBe(true);
    expect(matchKey(B, digests)).toBe(true);
    expect(matchKey(A.slice(0, -1), digests)).toBe(false);
    expect(matchKey('', digests)).toBe(false);
    expect(matchKey(A, [])).toBe(false);
    expect(ownerOf(A)).not.toBe(ownerOf(B));
    expect(ownerOf(A)).toMatch(/^k[0-9a-f]{32}$/);
    expect(ownerOf(A)).not.toContain(A);
  });

  it('a key sees only its own predictions', async () => {
    const created = await call('/v1/predictions', A, { body: { input: { prompt: 'alice only' } } });
    expect(created.status).toBe(201);
    const { id } = await created.json();

    expect((await call(`/v1/predictions/${id}`, A)).status).toBe(200);
    for (const [path, method] of [
      [`/v1/predictions/${id}`, 'GET'],
      [`/v1/predictions/${id}/cancel`, 'POST'],
      [`/v1/predictions/${id}/stream`, 'GET'],
    ]) {
      const res = await call(path, B, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect((await res.json()).error.code).toBe('not_found');
    }
    const listA = await (await call('/v1/predictions', A)).json();
    const listB = await (await call('/v1/predictions', B)).json();
    expect(listA.results.map((p: { id: string }) => p.id)).toContain(id);
    expect(listB.results.map((p: { id: string }) => p.id)).not.toContain(id);
    // B's cancel attempt changed nothing
    expect((await h.predictions.get(id))!.value.cancel_requested).toBe(false);
  });

  it("lists a key's predictions newest first, page by page, and no one else's", async () => {
    const C = 'key-carol-000000000';
    const carol = h.makeApp({ apiKeys: [C] });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await carol.request('/v1/predictions', { method: 'POST', body: JSON.stringify({ input: { prompt: `p${i}` } }), headers: { 'content-type': 'application/json', authorization: `Bearer ${C}` } });
      ids.push((await res.json()).id);
      await new Promise((r) => setTimeout(r, 5)); // distinct creation times
    }
    const seen: string[] = [];
    let pages = 0;
    for (let next: string | null = 'http://localhost/v1/predictions?limit=2'; next; pages++) {
      const page: { results: { id: string }[]; next: string | null } = await (await carol.request(next, { headers: { authorization: `Bearer ${C}` } })).json();
      expect(page.results.length).toBeLessThanOrEqual(2);
      seen.push(...page.results.map((r) => r.id));
      next = page.next;
    }
    expect(seen).toEqual([...ids].reverse());
    expect(pages).toBe(3);
  });

  it("a key cannot use another key's upload", async () => {
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#f80' } }).png().toBuffer();
    const upload = await (await call('/v1/uploads', A, { body: { content_type: 'image/png' } })).json();
    const put = await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: png });
    expect(put.status).toBe(200);

    const asB = await call('/v1/predictions', B, { body: { input: { prompt: 'what is <image>', images: [upload.upload_id] } } });
    expect(asB.status).toBe(422);
    expect((await asB.json()).error).toMatchObject({ code: 'unknown_upload', param: 'input.images[0]' });

    const asA = await call('/v1/predictions', A, { body: { input: { prompt: 'what is <image>', images: [upload.upload_id] } } });
    expect(asA.status).toBe(201);
    const prediction = await asA.json();
    expect(prediction.input.images).toEqual([`inputs/${prediction.id}/image-0.f32`]);

    // a presigned PUT cannot bound its size: the bound holds when the upload is used
    const strict = h.makeApp({ apiKeys: [A], limits: { image: { maxBytes: png.length - 1, maxPixels: 1 << 20, timeoutMs: 1000, maxRedirects: 0 } } });
    const tooBig = await strict.request('/v1/predictions', {
      method: 'POST',
      body: JSON.stringify({ input: { prompt: '<image>', images: [upload.upload_id] } }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${A}` },
    });
    expect(tooBig.status).toBe(413);
    expect((await tooBig.json()).error).toMatchObject({ code: 'image_too_large', param: 'input.images[0]' });
  });
});
