import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import { bucketOnOrigin, presignOnOrigin } from '../dev/bucket-on-api-origin.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { serveApi, type ServedApi } from '../contract/serve-http.ts';

/**
 * The bucket as `npm start` serves it on the API's origin (issue 18, items 1–3), attacked over real
 * HTTP: only URLs the service signed work, only for what they were signed for (GET of an output, PUT
 * of an upload as its content type), keys stay inside the bucket's directory, and what comes back
 * can never run as a page on this origin.
 */
let root: string;
let stack: LocalStack;
let internal: S3BlobStore;
let api: ServedApi;
let onOrigin: ReturnType<typeof presignOnOrigin>;
const SECRET = 'a-secret-only-the-service-knows';

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-origin-'));
  fs.mkdirSync(path.join(root, 'data/s3'), { recursive: true });
  stack = await startLocalStack({ dir: path.join(root, 'data/s3') });
  internal = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
  let handle: (r: Request) => Response | Promise<Response> = () => new Response('', { status: 503 });
  api = await serveApi({ fetch: (r) => handle(r) });
  const signing = { accessKeyId: 'ANOLE-LOCAL', secretAccessKey: SECRET };
  onOrigin = presignOnOrigin(internal, stack.s3, api.url, signing);
  handle = bucketOnOrigin({ bucket: stack.s3.bucket, store: internal, signing, region: stack.s3.region }, () => new Response('the API', { status: 404 })); // as the API answers a path it does not know
  await internal.put('outputs/p1/image-0-0.png', Buffer.from('not really a png'), 'image/png');
  await internal.put('outputs/p1/page.html', '<script>alert(1)</script>', 'text/html');
  await internal.put('predictions/p1/status.json', '{"id":"p1","owner":"someone"}', 'application/json');
}, 60_000);
afterAll(async () => {
  await api?.close();
  internal?.s3.destroy();
  await stack?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

/** A raw request: fetch would normalise `..` and encoded slashes away before they reach the server. */
function raw(method: string, target: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(api.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: target, headers: body !== undefined ? { 'content-length': Buffer.byteLength(body), ...headers } : headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const pathAndQuery = (url: string) => {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
};

describe('the bucket on the API origin: signatures (item 1)', () => {
  it('serves an output through the URL the service signed', async () => {
    const { url } = await onOrigin.presignGet('outputs/p1/image-0-0.png', 60);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('not really a png');
  });

  it('refuses a listing, a record read and a record overwrite with a made-up signature', async () => {
    expect((await raw('GET', `/${stack.s3.bucket}?prefix=predictions/&X-Amz-Signature=x`)).status).toBe(403);
    expect((await raw('GET', `/${stack.s3.bucket}/predictions/p1/status.json?X-Amz-Signature=x`)).status).toBe(403);
    expect((await raw('PUT', `/${stack.s3.bucket}/predictions/p1/status.json?X-Amz-Signature=x`, '{"owner":"me"}')).status).toBe(403);
    expect(new TextDecoder().decode(await internal.get('predictions/p1/status.json'))).toContain('someone');
  });

  it('refuses a signed URL with one byte of its signature changed, or with a parameter dropped or added', async () => {
    const { url } = await onOrigin.presignGet('outputs/p1/image-0-0.png', 60);
    const u = new URL(url);
    const sig = u.searchParams.get('X-Amz-Signature')!;
    const forged = new URL(url);
    forged.searchParams.set('X-Amz-Signature', `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`);
    expect((await raw('GET', pathAndQuery(forged.href))).status).toBe(403);
    const noAlgorithm = new URL(url);
    noAlgorithm.searchParams.delete('X-Amz-Algorithm');
    expect((await raw('GET', pathAndQuery(noAlgorithm.href))).status).toBe(403);
    const listing = new URL(url);
    listing.searchParams.set('acl', '');
    expect((await raw('GET', pathAndQuery(listing.href))).status).toBe(403);
  });

  it('refuses a URL signed with the well-known local S3 account (anyone can sign with it)', async () => {
    const publicKeys = createS3Client({ ...stack.s3, endpoint: api.url });
    const url = await getSignedUrl(publicKeys, new GetObjectCommand({ Bucket: stack.s3.bucket, Key: 'outputs/p1/image-0-0.png' }), { expiresIn: 60 });
    publicKeys.destroy();
    expect((await raw('GET', pathAndQuery(url))).status).toBe(403);
  });

  it('refuses an expired URL, with its expiry or without its algorithm', async () => {
    const { url, expiresAt } = await onOrigin.presignGet('outputs/p1/image-0-0.png', 1);
    await new Promise((r) => setTimeout(r, Date.parse(expiresAt) - Date.now() + 50));
    const res = await raw('GET', pathAndQuery(url));
    expect(res.status).toBe(403);
    expect(res.body).toContain('expired');
  });

  it('grants only what the service signs: GET of outputs, PUT of uploads', async () => {
    // a genuine signature, for a key the service never hands out
    const record = await onOrigin.presignGet('predictions/p1/status.json', 60);
    expect((await raw('GET', pathAndQuery(record.url))).status).toBe(403);
    const overwrite = await onOrigin.presignPut('outputs/p1/image-0-0.png', { contentType: 'image/png', expiresInSeconds: 60 });
    expect((await raw('PUT', pathAndQuery(overwrite.url), 'x', { 'content-type': 'image/png' })).status).toBe(403);
    // a GET URL does not allow a PUT to the same key
    const get = await onOrigin.presignGet('outputs/p1/image-0-0.png', 60);
    expect((await raw('PUT', pathAndQuery(get.url), 'x', { 'content-type': 'image/png' })).status).toBe(403);
    const upload = await onOrigin.presignPut('uploads/local/up_aaaaaaaaaaaaaaaaaaaaaaaaaa', { contentType: 'image/png', expiresInSeconds: 60 });
    expect((await raw('PUT', pathAndQuery(upload.url), 'png bytes', { 'content-type': 'image/png' })).status).toBe(200);
    expect(new TextDecoder().decode(await internal.get('uploads/local/up_aaaaaaaaaaaaaaaaaaaaaaaaaa'))).toBe('png bytes');
  });

  it('leaves every other path to the API', async () => {
    expect((await raw('GET', '/anolefoo')).body).toBe('the API');
  });
});

describe('the bucket on the API origin: keys (item 2)', () => {
  it('keeps keys inside the bucket directory whatever their encoding', async () => {
    const before = fs.readdirSync(root).sort();
    for (const evil of ['..%2f..%2f..%2fescaped', '..%2F..%2F..%2Fescaped', '%2e%2e/%2e%2e/%2e%2e/escaped', 'uploads/..%5c..%5c..%5cescaped', '..%252f..%252fescaped']) {
      const res = await raw('PUT', `/${stack.s3.bucket}/${evil}?X-Amz-Signature=x`, 'pwned', { 'content-type': 'text/plain' });
      expect(res.status, evil).toBeGreaterThanOrEqual(400);
    }
    // even with a genuine signature on a key that climbs out
    const signed = await onOrigin.presignPut('uploads/../../../escaped', { contentType: 'image/png', expiresInSeconds: 60 });
    const res = await raw('PUT', pathAndQuery(signed.url).replace(/%2F/g, '/'), 'pwned', { 'content-type': 'image/png' });
    expect(res.status).toBeGreaterThanOrEqual(400);
    // nor through the loopback front the service's own clients use
    const front = new URL(stack.s3Front.endpoint);
    const viaFront = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: front.hostname, port: front.port, method: 'PUT', path: `/${stack.s3.bucket}/..%2f..%2f..%2fescaped`, headers: { authorization: 'AWS4-HMAC-SHA256 x', 'content-length': 5 } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end('pwned');
    });
    expect(viaFront).toBe(400);
    expect(fs.readdirSync(root).sort()).toEqual(before);
    expect(fs.existsSync(path.join(root, 'escaped'))).toBe(false);
    expect(fs.existsSync(path.join(os.tmpdir(), 'escaped'))).toBe(false);
  });
});

describe('the bucket on the API origin: what it serves (item 3)', () => {
  it('takes an upload only as the content type it was signed for', async () => {
    const upload = await onOrigin.presignPut('uploads/local/up_bbbbbbbbbbbbbbbbbbbbbbbbbb', { contentType: 'image/png', expiresInSeconds: 60 });
    const html = await raw('PUT', pathAndQuery(upload.url), '<script>alert(1)</script>', { 'content-type': 'text/html' });
    expect(html.status).toBe(403);
    expect(await internal.head('uploads/local/up_bbbbbbbbbbbbbbbbbbbbbbbbbb')).toBeUndefined();
  });

  it('serves everything with nosniff and a CSP without scripts; what is not an image as an attachment', async () => {
    const png = await fetch((await onOrigin.presignGet('outputs/p1/image-0-0.png', 60)).url);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(png.headers.get('x-content-type-options')).toBe('nosniff');
    expect(png.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(png.headers.get('content-security-policy')).toMatch(/sandbox/);
    expect(png.headers.get('content-disposition')).toBeNull();
    const page = await fetch((await onOrigin.presignGet('outputs/p1/page.html', 60)).url);
    expect(page.status).toBe(200);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(page.headers.get('content-disposition')).toMatch(/^attachment/);
    const refused = await raw('GET', `/${stack.s3.bucket}/outputs/p1/page.html?X-Amz-Signature=x`);
    expect(refused.headers['x-content-type-options']).toBe('nosniff');
  });
});
