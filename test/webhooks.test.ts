import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateWebhookSecret, wantsEvent, webhookId, WebhookSender } from '../sidecar/worker/webhooks.ts';

/**
 * WebhookSender over real HTTP to a receiver on loopback: Standard Webhooks signatures that the
 * standardwebhooks package verifies, bounded retries under one webhook-id, redirects never
 * followed, and the address policy (SSRF) applied both to the URL and to what a name resolves to.
 */
const secret = generateWebhookSecret();
let server: http.Server;
let base: string;
const received: { path: string; headers: http.IncomingHttpHeaders; body: string; at: number }[] = [];
const answers = new Map<string, (res: http.ServerResponse) => void>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() });
      (answers.get(req.url!) ?? ((r) => r.writeHead(204).end()))(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const hits = (path: string) => received.filter((r) => r.path === path);

describe('WebhookSender', () => {
  it('signs per Standard Webhooks; the id is stable per (prediction, event, index)', async () => {
    const sender = new WebhookSender({ secret });
    const payload = { id: 'p1', status: 'succeeded' };
    const out = await sender.deliver({ url: `${base}/ok`, predictionId: 'p1', event: 'completed', payload });
    expect(out).toMatchObject({ delivered: true, attempts: 1, status: 204, webhookId: webhookId('p1', 'completed') });
    const [hit] = hits('/ok');
    expect(hit.headers['content-type']).toBe('application/json');
    expect(new Webhook(secret).verify(hit.body, hit.headers as Record<string, string>)).toEqual(payload);
    expect(() => new Webhook(generateWebhookSecret()).verify(hit.body, hit.headers as Record<string, string>)).toThrow();
    expect(() => new Webhook(secret).verify(hit.body.replace('succeeded', 'failed'), hit.headers as Record<string, string>)).toThrow();
    expect(webhookId('p1', 'output', 0)).not.toBe(webhookId('p1', 'output', 1));
    expect(webhookId('p1', 'start')).toBe(webhookId('p1', 'start'));
  });

  it('retries failures with growing delays, at most maxAttempts times, under one webhook-id', async () => {
    answers.set('/down', (r) => r.writeHead(503).end());
    const sender = new WebhookSender({ secret, maxAttempts: 3, baseDelayMs: 100 });
    const out = await sender.deliver({ url: `${base}/down`, predictionId: 'p2', event: 'start', payload: {} });
    expect(out).toMatchObject({ delivered: false, attempts: 3, status: 503, error: 'HTTP 503' });
    const tries = hits('/down');
    expect(tries).toHaveLength(3);
    expect(new Set(tries.map((t) => t.headers['webhook-id']))).toEqual(new Set([webhookId('p2', 'start')]));
    const gaps = [tries[1].at - tries[0].at, tries[2].at - tries[1].at];
    expect(gaps[0]).toBeGreaterThanOrEqual(80); // 100 ms ± 20 %
    expect(gaps[1]).toBeGreaterThanOrEqual(160); // 200 ms ± 20 %
    // each attempt is signed afresh, and verifies
    for (const t of tries) expect(() => new Webhook(secret).verify(t.body, t.headers as Record<string, string>)).not.toThrow();
  });

  it('never follows a redirect', async () => {
    answers.set('/moved', (r) => r.writeHead(302, { location: `${base}/elsewhere` }).end());
    const out = await new WebhookSender({ secret, maxAttempts: 2, baseDelayMs: 10 }).deliver({ url: `${base}/moved`, predictionId: 'p3', event: 'completed', payload: {} });
    expect(out).toMatchObject({ delivered: false, attempts: 2, status: 302 });
    expect(hits('/elsewhere')).toHaveLength(0);
  });

  it('applies the address policy to the URL and to what its host resolves to, without retrying a refusal', async () => {
    const strict = new WebhookSender({ secret, maxAttempts: 3, baseDelayMs: 10, policy: { allowHttp: false, allowedAddresses: [] } });
    expect(await strict.deliver({ url: `${base}/strict`, predictionId: 'p4', event: 'completed', payload: {} })).toMatchObject({ delivered: false, attempts: 1, error: expect.stringMatching(/refused.*http: URLs are not allowed/) });
    const httpOk = new WebhookSender({ secret, maxAttempts: 3, baseDelayMs: 10, policy: { allowHttp: true, allowedAddresses: [] } });
    expect(await httpOk.deliver({ url: `${base}/strict`, predictionId: 'p4', event: 'completed', payload: {} })).toMatchObject({ delivered: false, attempts: 1, error: expect.stringMatching(/refused.*127\.0\.0\.1 is not a public address/) });
    // a name is checked at connect time, on the addresses it resolved to
    const port = (server.address() as AddressInfo).port;
    expect(await httpOk.deliver({ url: `http://localhost:${port}/strict`, predictionId: 'p4', event: 'completed', payload: {} })).toMatchObject({ delivered: false, attempts: 1, error: expect.stringMatching(/refused.*not a public address/) });
    expect(hits('/strict')).toHaveLength(0);
    const local = new WebhookSender({ secret, policy: { allowHttp: true, allowedAddresses: ['127.0.0.1'] } });
    expect(await local.deliver({ url: `${base}/strict`, predictionId: 'p4', event: 'completed', payload: {} })).toMatchObject({ delivered: true });
  });

  it('filters events as Replicate does: none listed means all', () => {
    expect(wantsEvent([], 'output')).toBe(true);
    expect(wantsEvent(null, 'start')).toBe(true);
    expect(wantsEvent(['completed'], 'start')).toBe(false);
    expect(wantsEvent(['start', 'completed'], 'completed')).toBe(true);
  });
});
