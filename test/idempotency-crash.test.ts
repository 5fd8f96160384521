import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_OWNER } from '../functions/api/auth.ts';
import { idempotencyRecordKey } from '../functions/api/idempotency.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';
import { startServe, type ServedProcess } from './serve-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * Idempotency-Key when the request that holds it dies mid-wait (issue 18, item 5): `npm start` is
 * SIGKILLed while a `Prefer: wait` request waits, and restarted on the same data directory. A retry
 * finds the first prediction and replays it (one prediction, not two). While the first may still be
 * running, the 409 says when to come back (Retry-After).
 */
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-idem-crash-'));
const started: ServedProcess[] = [];
let h: ApiHarness;
beforeAll(async () => {
  h = await startApiHarness();
}, 60_000);
afterAll(async () => {
  for (const s of started) await s.stop(5000);
  await h?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/**
 * The body of object `key` as the local S3 server keeps it in the data directory, once all of it is
 * written, else ''. s3rver writes an object's bytes, then their md5, then its metadata, as separate files:
 * a kill between them leaves a record it cannot serve, which no real S3 does, so the test kills only
 * after the last of them (a CI run once killed in between: the retry's read failed, 503).
 */
function recordOnDisk(key: string): string {
  const s3Dir = path.join(dataDir, 's3');
  const files = fs.readdirSync(s3Dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes(key));
  const object = files.find((f) => f.endsWith('._S3rver_object'));
  const metadata = files.find((f) => f.endsWith('._S3rver_metadata.json'));
  const md5 = files.find((f) => f.endsWith('._S3rver_object.md5'));
  if (!object || !metadata || !md5) return '';
  const body = fs.readFileSync(path.join(s3Dir, object));
  const complete =
    fs.readFileSync(path.join(s3Dir, md5), 'utf8') === createHash('md5').update(body).digest('hex') &&
    fs.statSync(path.join(s3Dir, metadata)).mtimeMs >= fs.statSync(path.join(s3Dir, md5)).mtimeMs;
  return complete ? body.toString('utf8') : '';
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/predictions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe('Idempotency-Key after a crash', () => {
  it('a retry after the server died mid-wait replays the first prediction', async () => {
    const first = await startServe({ ANOLE_DATA_DIR: dataDir });
    started.push(first);
    // work ahead of it, so that it is still waiting when the server dies
    await Promise.all(Array.from({ length: 20 }, (_, k) => post(first.url, { input: { prompt: `ahead ${k}`, mode: 'image' } })));
    const body = { input: { prompt: 'crash me', max_new_tokens: 3 } };
    const headers = { 'idempotency-key': 'crash-1', prefer: 'wait=5' };
    void post(first.url, body, headers).catch(() => undefined);
    // killed once its key's record names the prediction (it then waits behind the work ahead), not after a guessed second
    await waitUntil(() => recordOnDisk(idempotencyRecordKey(LOCAL_OWNER, 'crash-1')).includes('"prediction_id"'), 60_000, "the first request's prediction", 20);
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await startServe({ ANOLE_DATA_DIR: dataDir });
    started.push(second);
    const list = (await (await fetch(`${second.url}/v1/predictions?limit=100`)).json()) as { results: { id: string; input: { prompt: string } }[] };
    const made = list.results.filter((p) => p.input.prompt === 'crash me');
    expect(made).toHaveLength(1); // the first request did create it before it died

    let retry = await post(second.url, body, headers);
    if (retry.status === 409) {
      await new Promise((r) => setTimeout(r, Number(retry.headers.get('retry-after')) * 1000));
      retry = await post(second.url, body, headers);
    }
    expect([201, 202]).toContain(retry.status);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(((await retry.json()) as { id: string }).id).toBe(made[0].id);
    const after = (await (await fetch(`${second.url}/v1/predictions?limit=100`)).json()) as { results: { input: { prompt: string } }[] };
    expect(after.results.filter((p) => p.input.prompt === 'crash me')).toHaveLength(1);
  }, 240_000);

  it('a 409 for a request still in flight carries Retry-After: the time it may still take', async () => {
    const body = { input: { prompt: 'in flight' } };
    const headers = { 'content-type': 'application/json', 'idempotency-key': 'busy-1', prefer: 'wait=2' };
    const first = h.app.request('/v1/predictions', { method: 'POST', headers, body: JSON.stringify(body) });
    const recordKey = idempotencyRecordKey(LOCAL_OWNER, 'busy-1');
    // once its prediction exists (before, the key is held for the preparation's bound, idempotencyLeaseMs)
    const made = async () => new TextDecoder().decode((await h.store.getWithEtag(recordKey))?.body ?? new Uint8Array()).includes('"prediction_id"');
    await waitUntil(made, 10_000, 'the prediction to be made', 20);
    const duplicate = await h.app.request('/v1/predictions', { method: 'POST', headers, body: JSON.stringify(body) });
    expect(duplicate.status).toBe(409);
    const retryAfter = Number(duplicate.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2 + 5); // the wait it asked for and a margin, not the 10-minute lease
    expect((await first).status).toBe(202);
  });
});
