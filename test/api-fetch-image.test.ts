import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPublicAddress, PRODUCTION_ADDRESS_POLICY, type AddressPolicy } from '../contract/address-policy.ts';
import { ApiError } from '../functions/api/errors.ts';
import { fetchImageUrl, type ImageLimits } from '../functions/api/fetch-image.ts';

/**
 * Image URLs are fetched on the caller's behalf, so they must not reach private, loopback or
 * link-local addresses — not directly, not through DNS, not after a redirect. The servers here
 * are real, on loopback; the test policy allows exactly 127.0.0.1 (where the "public" server
 * runs) and nothing else, so every refusal below is the policy's doing.
 */
const LIMITS: ImageLimits = { maxBytes: 4096, maxPixels: 1 << 20, timeoutMs: 1500, maxRedirects: 3 };
const TEST_POLICY: AddressPolicy = { allowHttp: true, allowedAddresses: ['127.0.0.1'] };

let png: Buffer;
let server: http.Server; // the allowed host, 127.0.0.1
let hidden: http.Server; // a "private" host, 127.0.0.2: must never be reached
let hiddenHits = 0;
let base: string;
let hiddenBase: string;

function listen(s: http.Server, host: string): Promise<number> {
  return new Promise((resolve) => s.listen(0, host, () => resolve((s.address() as AddressInfo).port)));
}

beforeAll(async () => {
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#08f' } }).png().toBuffer();
  server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const to = url.searchParams.get('to');
    if (url.pathname === '/image.png') return res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    if (url.pathname === '/redirect') return res.writeHead(302, { location: to! }).end();
    if (url.pathname === '/hops') {
      const n = Number(url.searchParams.get('n'));
      return res.writeHead(302, { location: n > 0 ? `/hops?n=${n - 1}` : '/image.png' }).end();
    }
    if (url.pathname === '/big') return res.writeHead(200, { 'content-length': String(LIMITS.maxBytes + 1) }).end(Buffer.alloc(LIMITS.maxBytes + 1));
    if (url.pathname === '/big-chunked') {
      res.writeHead(200); // no content-length: the limit must hold while reading
      for (let i = 0; i < 10; i++) res.write(Buffer.alloc(1000));
      return res.end();
    }
    if (url.pathname === '/slow') return; // never answers
    res.writeHead(404).end();
  });
  hidden = http.createServer((_, res) => {
    hiddenHits++;
    res.writeHead(200, { 'content-type': 'image/png' }).end(png);
  });
  base = `http://127.0.0.1:${await listen(server, '127.0.0.1')}`;
  hiddenBase = `http://127.0.0.2:${await listen(hidden, '127.0.0.2')}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await new Promise((r) => hidden?.close(r));
});

async function refusal(url: string, policy: AddressPolicy = TEST_POLICY): Promise<ApiError> {
  try {
    await fetchImageUrl(url, policy, LIMITS, 'input.images[0]');
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).param).toBe('input.images[0]');
    return e as ApiError;
  }
  throw new Error(`${url} was fetched`);
}

describe('address classification', () => {
  it.each([
    ['8.8.8.8', true],
    ['93.184.215.14', true],
    ['2606:4700:4700::1111', true],
    ['127.0.0.1', false],
    ['127.9.9.9', false],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['172.31.255.255', false],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['255.255.255.255', false],
    ['::1', false],
    ['::', false],
    ['fe80::1', false],
    ['fd00::1', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['64:ff9b::a00:1', false],
    ['not an address', false],
  ])('%s public: %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});

describe('fetching an image URL', () => {
  it('fetches from an allowed host (the control: the refusals below are not connection failures)', async () => {
    expect(Buffer.from(await fetchImageUrl(`${base}/image.png`, TEST_POLICY, LIMITS, 'p'))).toEqual(png);
    expect(Buffer.from(await fetchImageUrl(`${base}/hops?n=2`, TEST_POLICY, LIMITS, 'p'))).toEqual(png);
  });

  it('refuses plain http in production', async () => {
    expect((await refusal(`${base}/image.png`, PRODUCTION_ADDRESS_POLICY)).code).toBe('image_url_refused');
  });

  it('refuses a loopback address in production, before connecting', async () => {
    const e = await refusal(`https://127.0.0.1:${new URL(base).port}/image.png`, PRODUCTION_ADDRESS_POLICY);
    expect(e.code).toBe('image_url_refused');
    expect(e.status).toBe(422);
  });

  it('refuses a host name that resolves to loopback (the check is on the resolved address)', async () => {
    const e = await refusal(`http://localhost:${new URL(base).port}/image.png`, { allowHttp: true, allowedAddresses: [] });
    expect(e.code).toBe('image_url_refused');
  });

  it('refuses a redirect to the metadata endpoint', async () => {
    const e = await refusal(`${base}/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`);
    expect(e.code).toBe('image_url_refused');
  });

  it('refuses a redirect to another loopback address, and never connects to it', async () => {
    const direct = await refusal(`${hiddenBase}/image.png`);
    expect(direct.code).toBe('image_url_refused');
    const viaRedirect = await refusal(`${base}/redirect?to=${encodeURIComponent(`${hiddenBase}/image.png`)}`);
    expect(viaRedirect.code).toBe('image_url_refused');
    expect(hiddenHits).toBe(0);
  });

  it('refuses other schemes after a redirect', async () => {
    expect((await refusal(`${base}/redirect?to=${encodeURIComponent('file:///etc/passwd')}`)).code).toBe('image_url_refused');
  });

  it('stops after maxRedirects', async () => {
    const e = await refusal(`${base}/hops?n=5`);
    expect(e.code).toBe('image_fetch_failed');
    expect(e.message).toMatch(/redirects/);
  });

  it('refuses more than maxBytes, declared or streamed', async () => {
    for (const path of ['/big', '/big-chunked']) {
      const e = await refusal(`${base}${path}`);
      expect([e.status, e.code]).toEqual([413, 'image_too_large']);
    }
  });

  it('gives up after timeoutMs', async () => {
    const started = Date.now();
    const e = await refusal(`${base}/slow`);
    expect(e.code).toBe('image_fetch_failed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(LIMITS.timeoutMs - 50);
  });

  it('reports an error status as a failed fetch', async () => {
    const e = await refusal(`${base}/missing.png`);
    expect([e.status, e.code]).toEqual([422, 'image_fetch_failed']);
    expect(e.message).toMatch(/404/);
  });
});
