import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newPrediction, type PredictionEvent, type PredictionRecord } from '../contract/prediction.ts';
import { InvalidCursorError, InvalidTransitionError, PredictionExistsError, PredictionNotFoundError, PredictionStore } from '../contract/prediction-store.ts';
import { createS3Client } from '../contract/s3.ts';
import { BlobNotFoundError, PreconditionFailedError, S3BlobStore } from '../contract/s3-blob-store.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { isTransientError } from '../contract/transient-error.ts';
import { renderPrediction } from '../functions/api/prediction-view.ts';

/**
 * The storage layer against a real S3-compatible server on loopback (s3rver behind the
 * conditional-write front), through @aws-sdk/client-s3: conditional writes under contention,
 * the prediction lifecycle, per-owner pagination, the event log, presigned URLs, an outage.
 */
let stack: LocalStack;
let blobs: S3BlobStore;
let store: PredictionStore;

beforeAll(async () => {
  stack = await startLocalStack();
  blobs = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
  store = new PredictionStore(blobs);
});
afterAll(async () => {
  blobs?.s3.destroy();
  await stack?.stop();
});

let serial = 0;
function record(extra: Partial<PredictionRecord> = {}): PredictionRecord {
  const id = `p${++serial}-${Math.random().toString(36).slice(2, 8)}`;
  return newPrediction({ id, owner: 'alice', input: { prompt: 'hi' }, ...extra });
}

describe('conditional writes through the S3 front', () => {
  it('If-None-Match: * creates once; If-Match needs the current ETag', async () => {
    const etag = await blobs.putIfAbsent('cw/a', 'one', 'text/plain');
    await expect(blobs.putIfAbsent('cw/a', 'two', 'text/plain')).rejects.toBeInstanceOf(PreconditionFailedError);
    await expect(blobs.putIfMatch('cw/a', 'two', 'text/plain', '"0123456789abcdef0123456789abcdef"')).rejects.toBeInstanceOf(PreconditionFailedError);
    const etag2 = await blobs.putIfMatch('cw/a', 'two', 'text/plain', etag);
    expect(etag2).not.toBe(etag);
    await expect(blobs.putIfMatch('cw/a', 'three', 'text/plain', etag)).rejects.toBeInstanceOf(PreconditionFailedError);
    await expect(blobs.putIfMatch('cw/missing', 'x', 'text/plain', etag)).rejects.toBeInstanceOf(PreconditionFailedError);
    expect(new TextDecoder().decode(await blobs.get('cw/a'))).toBe('two');
  });

  it('of 16 concurrent creates of one key exactly one wins', async () => {
    const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => blobs.putIfAbsent('cw/race', `writer ${i}`, 'text/plain')));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(PreconditionFailedError);
    expect(new TextDecoder().decode(await blobs.get('cw/race'))).toBe(`writer ${won[0]}`);
  });

  it('concurrent read-modify-write updates lose nothing', async () => {
    const r = record();
    await store.create(r);
    // two stores, as two processes would be: 12 increments race on one record
    const other = new PredictionStore(blobs);
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? store : other).update(r.id, (cur) => ({ ...cur, metrics: { ...cur.metrics, generated_tokens: (cur.metrics.generated_tokens ?? 0) + 1 } })),
      ),
    );
    expect((await store.get(r.id))!.value.metrics.generated_tokens).toBe(12);
  });
});

describe('a write that landed while its answer was lost (the front answers 500; the SDK retries, and the retry is refused)', () => {
  const increment = (cur: PredictionRecord) => ({ ...cur, metrics: { ...cur.metrics, generated_tokens: (cur.metrics.generated_tokens ?? 0) + 1 } });

  it('an update counts once', async () => {
    const r = record();
    await store.create(r);
    stack.s3Front.loseWriteAnswers(1);
    const { value } = await store.update(r.id, increment);
    expect(value.metrics.generated_tokens).toBe(1);
    expect((await store.get(r.id))!.value).toEqual(value);
    await store.update(r.id, increment);
    expect((await store.get(r.id))!.value.metrics.generated_tokens).toBe(2);
  });

  it('a create is not taken for an existing prediction', async () => {
    const r = record();
    stack.s3Front.loseWriteAnswers(1);
    const { value } = await store.create(r);
    expect((await store.get(r.id))!.value).toEqual(value);
    await expect(store.create(r)).rejects.toBeInstanceOf(PredictionExistsError);
  });

  it('an event is appended once', async () => {
    const { id } = record();
    stack.s3Front.loseWriteAnswers(1);
    expect(await store.appendEvent(id, { type: 'text', sequence: 0, delta: 'a' })).toBe(0);
    expect(await new PredictionStore(blobs).appendEvent(id, { type: 'text', sequence: 0, delta: 'b' })).toBe(1);
    expect((await store.readEvents(id)).map((e) => e.event)).toEqual([
      { type: 'text', sequence: 0, delta: 'a' },
      { type: 'text', sequence: 0, delta: 'b' },
    ]);
  });

  it('an update counts once when another writer wrote over it before its retry', async () => {
    const r = record();
    await store.create(r);
    const other = new PredictionStore(blobs);
    stack.s3Front.loseWriteAnswers(1, { meanwhile: () => other.update(r.id, increment) });
    await store.update(r.id, increment);
    expect((await store.get(r.id))!.value.metrics.generated_tokens).toBe(2);
  });

  it('every write adds a fresh revision to the record’s latest 8; the API does not show them', async () => {
    const r = record();
    const created = await store.create(r);
    expect(created.value.revisions).toHaveLength(1);
    let latest = created.value;
    for (let i = 0; i < 9; i++) latest = (await store.update(r.id, increment)).value;
    expect(latest.revisions).toHaveLength(8);
    expect(new Set(latest.revisions).size).toBe(8);
    for (const id of latest.revisions!) expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(latest.revisions).not.toContain(created.value.revisions![0]);
    const view = await renderPrediction(latest, { presignGet: (key) => blobs.presignGet(key), origin: 'http://api', urlExpirySeconds: 60 });
    expect(view).not.toHaveProperty('revisions');
  });
});

describe('PredictionStore lifecycle', () => {
  it('creates once and reads back with an ETag', async () => {
    const r = record();
    const created = await store.create(r);
    expect(created.etag).toMatch(/^".+"$/);
    const got = await store.get(r.id);
    expect(got).toEqual({ value: { ...r, revisions: created.value.revisions }, etag: created.etag });
    expect(created.value).toEqual({ ...r, revisions: created.value.revisions });
    await expect(store.create({ ...r, input: { prompt: 'other' } })).rejects.toBeInstanceOf(PredictionExistsError);
    expect(await store.get('nope')).toBeUndefined();
    await expect(store.update('nope', (x) => x)).rejects.toBeInstanceOf(PredictionNotFoundError);
  });

  it('follows TRANSITIONS and never moves a finished record', async () => {
    const r = record();
    await store.create(r);
    await expect(store.update(r.id, (x) => ({ ...x, status: 'succeeded' }))).rejects.toBeInstanceOf(InvalidTransitionError);
    await expect(store.update(r.id, (x) => ({ ...x, owner: 'mallory' }))).rejects.toThrow(/owner cannot change/);
    const processing = await store.update(r.id, (x) => ({ ...x, status: 'processing', started_at: new Date().toISOString() }));
    expect(processing.value.status).toBe('processing');
    await expect(store.update(r.id, (x) => ({ ...x, status: 'starting' }))).rejects.toBeInstanceOf(InvalidTransitionError);
    await expect(store.update(r.id, (x) => ({ ...x, status: 'aborted' }))).rejects.toBeInstanceOf(InvalidTransitionError);
    const done = await store.update(r.id, (x) => ({ ...x, status: 'succeeded', output: [[{ type: 'text', text: 'hello' }]] }));
    expect(done.value.status).toBe('succeeded');
    await expect(store.update(r.id, (x) => ({ ...x, status: 'failed' }))).rejects.toThrow(/finished prediction never changes/);
    await expect(store.update(r.id, (x) => ({ ...x, cancel_requested: true }))).rejects.toBeInstanceOf(InvalidTransitionError);
    // a mutation that changes nothing (or declines with null) is not a write
    expect((await store.update(r.id, () => null)).etag).toBe(done.etag);
    expect((await store.update(r.id, (x) => x)).etag).toBe(done.etag);
    expect((await store.get(r.id))!.value.output).toEqual([[{ type: 'text', text: 'hello' }]]);
  });

  it('re-runs the mutation on the newer record after losing a race', async () => {
    const r = record();
    await store.create(r);
    let calls = 0;
    const result = await store.update(r.id, (cur) => {
      calls++;
      // the first time, someone else writes between our read and our write
      if (calls === 1) void blobs.put(`predictions/${r.id}/status.json`, JSON.stringify({ ...cur, cancel_requested: true }), 'application/json');
      return { ...cur, metrics: { generated_tokens: calls } };
    });
    // whether or not the outside write landed before ours, nothing was overwritten blindly
    const final = (await store.get(r.id))!.value;
    expect(final.metrics.generated_tokens).toBe(calls);
    expect(result.value.metrics.generated_tokens).toBe(calls);
    if (calls > 1) expect(final.cancel_requested).toBe(true);
  });
});

describe('listByOwner', () => {
  it('pages an owner’s predictions newest first, and only theirs', async () => {
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    const mine = Array.from({ length: 5 }, (_, i) => record({ owner: 'bob', created_at: new Date(t0 + i * 1000).toISOString() }));
    const theirs = [record({ owner: 'carol' }), record({ owner: 'bob2' })];
    await Promise.all([...mine, ...theirs].map((r) => store.create(r)));

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await store.listByOwner('bob', { limit: 2, cursor });
      expect(page.predictions.length).toBeLessThanOrEqual(2);
      seen.push(...page.predictions.map((p) => p.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...mine].reverse().map((r) => r.id));

    const carolPage = await store.listByOwner('carol', { limit: 10 });
    expect(carolPage.predictions.map((p) => p.id)).toEqual([theirs[0].id]);
    expect(carolPage.nextCursor).toBeNull();

    const firstBobPage = await store.listByOwner('bob', { limit: 2 });
    await expect(store.listByOwner('carol', { cursor: firstBobPage.nextCursor })).rejects.toBeInstanceOf(InvalidCursorError);
    await expect(store.listByOwner('bob', { cursor: 'garbage' })).rejects.toBeInstanceOf(InvalidCursorError);
  });
});

describe('event log', () => {
  it('appends in order and reads after a seq', async () => {
    const id = record().id;
    const events: PredictionEvent[] = [
      { type: 'status', status: 'processing' },
      { type: 'text', sequence: 0, delta: 'Hel' },
      { type: 'text', sequence: 0, delta: 'lo' },
      { type: 'done', status: 'succeeded' },
    ];
    for (const [i, e] of events.entries()) expect(await store.appendEvent(id, e)).toBe(i);
    expect(await store.readEvents(id)).toEqual(events.map((event, seq) => ({ seq, event })));
    expect(await store.readEvents(id, 1)).toEqual(events.slice(2).map((event, i) => ({ seq: i + 2, event })));
    expect(await store.readEvents(id, 3)).toEqual([]);
    expect(await store.readEvents(id, -1, { limit: 2 })).toHaveLength(2);
  });

  it('gives concurrent writers distinct, gapless seqs', async () => {
    const id = record().id;
    const writers = [new PredictionStore(blobs), new PredictionStore(blobs), new PredictionStore(blobs)];
    const seqs = await Promise.all(
      Array.from({ length: 15 }, (_, i) => writers[i % 3].appendEvent(id, { type: 'text', sequence: 0, delta: String(i) })),
    );
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    const read = await store.readEvents(id);
    expect(read.map((e) => e.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(new Set(read.map((e) => (e.event as { delta: string }).delta)).size).toBe(15);
  });

  it('stops at a gap (a write still in flight)', async () => {
    const id = record().id;
    await store.appendEvent(id, { type: 'status', status: 'processing' });
    await blobs.put(`predictions/${id}/events/000002.json`, JSON.stringify({ type: 'text', sequence: 0, delta: 'later' }), 'application/json');
    expect((await store.readEvents(id)).map((e) => e.seq)).toEqual([0]);
  });
});

describe('presigned URLs and failures', () => {
  it('a presigned PUT uploads and a presigned GET downloads, until it expires', async () => {
    const put = await blobs.presignPut('uploads/alice/u1', { contentType: 'image/png', expiresInSeconds: 60 });
    expect(Date.parse(put.expiresAt) - Date.now()).toBeGreaterThan(55_000);
    expect((await fetch(put.url, { method: 'PUT', body: 'pngbytes', headers: { 'content-type': 'image/png' } })).status).toBe(200);
    expect(await blobs.head('uploads/alice/u1')).toMatchObject({ size: 8, contentType: 'image/png' });
    const get = await blobs.presignGet('uploads/alice/u1', 3);
    // expiresAt is the signature's own expiry: X-Amz-Date (whole seconds) plus X-Amz-Expires
    const q = new URL(get.url).searchParams;
    const signedAt = Date.parse(q.get('X-Amz-Date')!.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
    expect(Date.parse(get.expiresAt)).toBe(signedAt + Number(q.get('X-Amz-Expires')) * 1000);
    expect(await (await fetch(get.url)).text()).toBe('pngbytes');
    // the server compares whole seconds too: a second past expiresAt it has expired
    await new Promise((r) => setTimeout(r, Date.parse(get.expiresAt) + 1100 - Date.now()));
    expect((await fetch(get.url)).status).toBe(403);
    // the bucket itself is private: no signature, no object
    expect((await fetch(`${stack.s3.endpoint}/${stack.s3.bucket}/uploads/alice/u1`)).status).toBe(403);
  });

  it('a missing key is BlobNotFoundError; an outage is a transient error, and passes', async () => {
    await expect(blobs.get('nothing/here')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await blobs.head('nothing/here')).toBeUndefined();
    await blobs.put('outage/x', 'still here', 'text/plain');
    await stack.s3Front.stop();
    try {
      const err = await blobs.get('outage/x').catch((e: unknown) => e);
      expect(isTransientError(err)).toBe(true);
      expect(isTransientError(new BlobNotFoundError('k'))).toBe(false);
    } finally {
      await stack.s3Front.start();
    }
    expect(new TextDecoder().decode(await blobs.get('outage/x'))).toBe('still here');
  });
});
