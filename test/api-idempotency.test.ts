import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_OWNER } from '../functions/api/auth.ts';
import { idempotencyRecordKey } from '../functions/api/idempotency.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * Idempotency-Key on POST /v1/predictions, with the real conditional writes of the local S3
 * stack deciding races: a replay returns the stored response, the same key with another body is
 * 422, an in-flight duplicate is 409, and however the requests interleave there is one job.
 * No worker runs here, so `Prefer: wait` holds a request in flight for as long as it asks.
 */
let h: ApiHarness;

beforeAll(async () => {
  h = await startApiHarness();
});
afterAll(async () => h?.stop());

/** Every queued message, removed from the queue. */
async function drainQueue(): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const got = await h.queue.receive(10, 0);
    if (got.length === 0) return ids;
    for (const m of got) {
      ids.push(m.job!.predictionId);
      await h.queue.delete(m.receiptHandle);
    }
  }
}
afterEach(async () => void (await drainQueue()));

const create = (body: unknown, headers: Record<string, string> = {}, app = h.app) =>
  app.request('/v1/predictions', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });

describe('Idempotency-Key', () => {
  it('a replay returns the stored response and makes no second prediction', async () => {
    const body = { input: { prompt: 'once', max_new_tokens: 3 } };
    const first = await create(body, { 'idempotency-key': 'replay-1' });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const firstBody = await first.json();

    // the same request, fields in another order
    const again = await create({ input: { max_new_tokens: 3, prompt: 'once' } }, { 'idempotency-key': 'replay-1' });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('location')).toBe(first.headers.get('location'));
    expect(await again.json()).toEqual(firstBody);
    expect(await drainQueue()).toEqual([firstBody.id]);
  });

  it("a request whose writes landed while their answers were lost makes one prediction, and its replay says so", async () => {
    // the front answers 500 to the first writes it makes (the claim, the prediction's record); the SDK retries them
    h.stack.s3Front.loseWriteAnswers(2);
    const body = { input: { prompt: 'lost answers', max_new_tokens: 3 } };
    const first = await create(body, { 'idempotency-key': 'lost-1' });
    expect(first.status).toBe(201);
    const again = await create(body, { 'idempotency-key': 'lost-1' });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const { id } = await first.json();
    expect((await again.json()).id).toBe(id);
    expect(await drainQueue()).toEqual([id]);
  });

  it('the same key with a different body is 422', async () => {
    expect((await create({ input: { prompt: 'one' } }, { 'idempotency-key': 'reuse-1' })).status).toBe(201);
    const other = await create({ input: { prompt: 'two' } }, { 'idempotency-key': 'reuse-1' });
    expect(other.status).toBe(422);
    expect((await other.json()).error).toMatchObject({ code: 'idempotency_key_reused', param: 'Idempotency-Key' });
    // a different Cancel-After is a different request too
    const later = await create({ input: { prompt: 'one' } }, { 'idempotency-key': 'reuse-1', 'cancel-after': '5m' });
    expect(later.status).toBe(422);
    expect(await drainQueue()).toHaveLength(1);
  });

  it('a duplicate while the first is in flight is 409; once it is answered, the answer is replayed', async () => {
    const body = { input: { prompt: 'slow' } };
    const first = create(body, { 'idempotency-key': 'inflight-1', prefer: 'wait=2' });
    const recordKey = idempotencyRecordKey(LOCAL_OWNER, 'inflight-1');
    while (!(await h.store.head(recordKey))) await new Promise((r) => setTimeout(r, 20));

    const duplicate = await create(body, { 'idempotency-key': 'inflight-1', prefer: 'wait=2' });
    expect(duplicate.status).toBe(409);
    expect((await duplicate.json()).error).toMatchObject({ code: 'idempotency_conflict', param: 'Idempotency-Key' });

    const answered = await first;
    expect(answered.status).toBe(202); // nothing runs the job here: the wait ran out
    expect(answered.headers.get('preference-applied')).toBe('wait=2');
    const replay = await create(body, { 'idempotency-key': 'inflight-1' });
    expect(replay.status).toBe(202);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await replay.json()).toEqual(await answered.json());
    expect(await drainQueue()).toHaveLength(1);
  });

  it('simultaneous duplicates make exactly one prediction', async () => {
    const body = { input: { prompt: 'race' } };
    const answers = await Promise.all(Array.from({ length: 6 }, () => create(body, { 'idempotency-key': 'race-1' })));
    const statuses = answers.map((r) => r.status);
    const created = answers.filter((r) => r.status === 201);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    const ids = new Set(await Promise.all(created.map(async (r) => (await r.json()).id)));
    expect(ids.size).toBe(1);
    expect(created.filter((r) => r.headers.get('idempotent-replayed') === null)).toHaveLength(1);
    expect(await drainQueue()).toEqual([...ids]);
  });

  it('a request that failed does not use up its key', async () => {
    const bad = await create({ input: { prompt: '<image>', images: ['up_aaaaaaaaaaaaaaaaaaaaaaaaaa'] } }, { 'idempotency-key': 'fix-1' });
    expect(bad.status).toBe(422);
    const fixed = await create({ input: { prompt: 'no image after all' } }, { 'idempotency-key': 'fix-1' });
    expect(fixed.status).toBe(201);
    expect(fixed.headers.get('idempotent-replayed')).toBeNull();
  });

  it('keys are per owner', async () => {
    const app = h.makeApp({ apiKeys: ['k1', 'k2'] });
    const body = { input: { prompt: 'same key, two owners' } };
    const one = await (await create(body, { 'idempotency-key': 'shared', authorization: 'Bearer k1' }, app)).json();
    const two = await (await create(body, { 'idempotency-key': 'shared', authorization: 'Bearer k2' }, app)).json();
    expect(one.id).not.toBe(two.id);
    expect(await drainQueue()).toHaveLength(2);
  });

  it('a request whose runner died (lease over) no longer blocks the key; an expired key is forgotten', async () => {
    let now = Date.now();
    const app = h.makeApp({ now: () => now, limits: { idempotencyLeaseMs: 60_000, idempotencyTtlMs: 3_600_000, pollMs: 50 } });
    const body = { input: { prompt: 'lease' } };
    const recordKey = idempotencyRecordKey(LOCAL_OWNER, 'lease-1');
    // a runner that died in flight: its record stays behind
    await h.store.putIfAbsent(
      recordKey,
      JSON.stringify({ fingerprint: 'whatever', state: 'in_flight', created_at: new Date(now).toISOString(), lease_until: new Date(now + 60_000).toISOString() }),
      'application/json',
    );
    expect((await create(body, { 'idempotency-key': 'lease-1' }, app)).status).toBe(422); // still leased, and another body
    now += 61_000;
    const taken = await create(body, { 'idempotency-key': 'lease-1' }, app);
    expect(taken.status).toBe(201);
    const firstId = (await taken.json()).id;
    expect((await (await create(body, { 'idempotency-key': 'lease-1' }, app)).json()).id).toBe(firstId);
    now += 3_600_000;
    const afterExpiry = await create(body, { 'idempotency-key': 'lease-1' }, app);
    expect(afterExpiry.headers.get('idempotent-replayed')).toBeNull();
    expect((await afterExpiry.json()).id).not.toBe(firstId);
  });
});
