import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseKey } from '../sidecar/worker/job-lease.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * Every prediction reaches a terminal state (issue 18, item 4), here with no worker at all: one whose
 * Cancel-After deadline passed while no worker holds its lease ends when it is next read, and a cancel
 * of one that no worker holds ends it at once (the worker that later gets its message drops it).
 */
let h: ApiHarness;
let app: ApiHarness['app'];
// the API's clock (its injected now()): it stands still, and the tests move it on rather than sleep
let clock = Date.now();
const later = (ms: number) => void (clock += ms);

beforeAll(async () => {
  h = await startApiHarness({ now: () => clock });
  app = h.app;
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const create = async (headers: Record<string, string> = {}) => {
  const res = await app.request('/v1/predictions', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ input: { prompt: 'never run', max_new_tokens: 4 } }) });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; status: string };
};
const get = async (id: string) => (await (await app.request(`/v1/predictions/${id}`)).json()) as { status: string; error: string | null; completed_at: string | null };

describe('predictions whose job can no longer run', () => {
  it('a queued prediction past its deadline with no worker is aborted when read, with a clear error', async () => {
    const p = await create({ 'cancel-after': '300ms' });
    later(299);
    expect((await get(p.id)).status).toBe('starting');
    later(101);
    const now = await get(p.id);
    expect(now.status).toBe('aborted');
    expect(now.error).toMatch(/deadline \(Cancel-After\) passed before any worker started it/);
    expect(now.completed_at).not.toBeNull();
  });

  it('a running prediction whose worker died (its lease expired) is failed once its deadline passes', async () => {
    const p = await create({ 'cancel-after': '300ms' });
    await h.predictions.update(p.id, (r) => ({ ...r, status: 'processing', started_at: new Date().toISOString() }));
    await h.store.put(leaseKey(p.id), JSON.stringify({ holder: 'a dead worker', expiresAt: clock - 1 }), 'application/json');
    later(400);
    const now = await get(p.id);
    expect(now.status).toBe('failed');
    expect(now.error).toMatch(/no worker holds it/);
  });

  it('a prediction a live worker holds is left to that worker', async () => {
    const p = await create({ 'cancel-after': '300ms' });
    await h.store.put(leaseKey(p.id), JSON.stringify({ holder: 'a live worker', expiresAt: clock + 60_000 }), 'application/json');
    later(400);
    expect((await get(p.id)).status).toBe('starting');
  });
});

describe('cancel', () => {
  it('cancels a prediction no worker holds at once', async () => {
    const p = await create();
    const res = await app.request(`/v1/predictions/${p.id}/cancel`, { method: 'POST' });
    const body = (await res.json()) as { status: string; completed_at: string | null };
    expect(body.status).toBe('canceled');
    expect(body.completed_at).not.toBeNull();
    expect((await get(p.id)).status).toBe('canceled');
  });

  it('only asks a worker that holds it (it stops at its next chunk and records the end)', async () => {
    const p = await create();
    await h.store.put(leaseKey(p.id), JSON.stringify({ holder: 'a live worker', expiresAt: clock + 60_000 }), 'application/json');
    const body = (await (await app.request(`/v1/predictions/${p.id}/cancel`, { method: 'POST' })).json()) as { status: string };
    expect(body.status).toBe('starting');
    expect((await h.predictions.get(p.id))!.value.cancel_requested).toBe(true);
  });
});
