import net from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi, type ServedApi } from '../contract/serve-http.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * Answers at the edges (issue 18, item 11): what Node's HTTP parser refuses (431, 400) comes with the
 * API's JSON error body too, a known path with the wrong method is 405 with Allow, and a truncated
 * image is named by its index.
 */
let h: ApiHarness;
let api: ServedApi;
let png: Buffer;
beforeAll(async () => {
  h = await startApiHarness();
  api = await serveApi(h.app);
  png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 30 } } }).png().toBuffer();
}, 60_000);
afterAll(async () => {
  await api?.close();
  await h?.stop();
});

/** Bytes on a socket, the answer as text: fetch would refuse to send these requests. */
function rawExchange(request: string): Promise<string> {
  const u = new URL(api.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname, () => socket.end(request));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c) => (text += c));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

const parse = (answer: string) => {
  const [head, body] = answer.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), head: head.toLowerCase(), body: JSON.parse(body) as { error: { code: string; message: string } } };
};

describe('HTTP edges', () => {
  it("Node's parser refusals come with a JSON error body: 431 for oversized headers, 400 for garbage", async () => {
    const big = parse(await rawExchange(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`));
    expect(big.status).toBe(431);
    expect(big.head).toContain('content-type: application/json');
    expect(big.body.error.code).toBe('headers_too_large');
    const garbage = parse(await rawExchange('NOT HTTP AT ALL\r\n\r\n'));
    expect(garbage.status).toBe(400);
    expect(garbage.head).toContain('content-type: application/json');
    expect(garbage.body.error.code).toBe('malformed_request');
  });

  it('a known path with another method is 405 with Allow', async () => {
    const res = await fetch(`${api.url}/v1/predictions`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, POST');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('method_not_allowed');
    const cancel = await fetch(`${api.url}/v1/predictions/abc/cancel`, { method: 'GET' });
    expect(cancel.status).toBe(405);
    expect(cancel.headers.get('allow')).toBe('POST');
    expect((await fetch(`${api.url}/v1/nothing-here`)).status).toBe(404);
  });

  it('a truncated PNG is named by its index', async () => {
    const good = `data:image/png;base64,${png.toString('base64')}`;
    const truncated = `data:image/png;base64,${png.subarray(0, Math.floor(png.length / 2)).toString('base64')}`;
    for (const [images, param] of [
      [[truncated], 'input.images[0]'],
      [[good, truncated], 'input.images[1]'],
    ] as const) {
      const res = await fetch(`${api.url}/v1/predictions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: { prompt: images.map(() => '<image>').join(' '), images } }),
      });
      const body = (await res.json()) as { error: { param: string } };
      expect(res.status, JSON.stringify(body)).toBe(415);
      expect(body.error.param).toBe(param);
    }
  });
});
