import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, describe, expect, it } from 'vitest';
import { startServe, type ServedProcess } from './serve-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * `npm start` without ANOLE_WEBHOOK_SECRET (issue 18, item 7): the secret it signs webhooks with is
 * kept in the data directory and named in the banner, so a receiver can verify what it gets, and it
 * stays the same after a restart.
 */
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-whsec-'));
const started: ServedProcess[] = [];
const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    received.push({ headers: req.headers, body });
    res.end('ok');
  });
});
afterAll(async () => {
  for (const s of started) await s.stop(10_000);
  receiver.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('anole serve: the webhook secret', () => {
  it('is kept in the data directory, named in the banner, and verifies the webhooks it signs', async () => {
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const env = { ANOLE_DATA_DIR: dataDir, ANOLE_ALLOW_HTTP_URLS: '1', ANOLE_ALLOWED_ADDRESSES: '127.0.0.1', ANOLE_WEBHOOK_SECRET: '' };
    const first = await startServe(env);
    started.push(first);
    const file = path.join(dataDir, 'webhook-secret');
    expect(first.stdout.join('\n')).toContain(file);
    const secret = fs.readFileSync(file, 'utf8').trim();
    expect(secret).toMatch(/^whsec_/);
    expect(fs.statSync(file).mode & 0o077).toBe(0); // only its owner reads it

    const res = await fetch(`${first.url}/v1/predictions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'wait=60' },
      body: JSON.stringify({ input: { prompt: 'hello', max_new_tokens: 3 }, webhook: hook, webhook_events_filter: ['completed'] }),
    });
    expect(res.status).toBe(201);
    await waitUntil(() => received.length > 0, 20_000, 'the webhook', 100);
    expect(received).toHaveLength(1);
    const verified = new Webhook(secret).verify(received[0].body, received[0].headers as Record<string, string>) as { status: string };
    expect(verified.status).toBe('succeeded');

    await first.stop();
    const second = await startServe(env);
    started.push(second);
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(secret);
  }, 180_000);
});
