import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredictionStore } from '../contract/prediction-store.ts';
import { serveApi, type ServedApi } from '../contract/serve-http.ts';
import { readSse, startApiHarness, type ApiHarness, type SseEvent } from './api-harness.ts';

/**
 * Many event streams of one prediction (issue 18, item 10) share one watcher: the store is polled
 * at the same rate for 40 listeners as for one, and every listener still gets every event, from
 * where it asked to resume.
 */
let h: ApiHarness;
let api: ServedApi;
const reads = { count: 0 };
const POLL_MS = 50;

beforeAll(async () => {
  h = await startApiHarness();
  // the store as the app sees it, counting the reads streams make
  const counted: Pick<PredictionStore, 'create' | 'get' | 'update' | 'listByOwner' | 'readEvents'> = {
    create: (...a) => h.predictions.create(...a),
    get: (...a) => (reads.count++, h.predictions.get(...a)),
    update: (...a) => h.predictions.update(...a),
    listByOwner: (...a) => h.predictions.listByOwner(...a),
    readEvents: (...a) => (reads.count++, h.predictions.readEvents(...a)),
  };
  api = await serveApi(h.makeApp({ predictions: counted, limits: { pollMs: POLL_MS } }));
}, 60_000);
afterAll(async () => {
  await api?.close();
  await h?.stop();
});

async function readsDuring(ms: number): Promise<number> {
  const before = reads.count;
  await new Promise((r) => setTimeout(r, ms));
  return reads.count - before;
}

describe('event streams of one prediction', () => {
  it('share one watcher: polling does not grow with listeners, and each gets every event', async () => {
    const created = (await (await fetch(`${api.url}/v1/predictions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: { prompt: 'many eyes', max_new_tokens: 3 } }) })).json()) as { id: string };
    const id = created.id;
    await h.predictions.update(id, (r) => ({ ...r, status: 'processing', started_at: new Date().toISOString() }));
    await h.predictions.appendEvent(id, { type: 'status', status: 'processing' });
    await h.predictions.appendEvent(id, { type: 'text', sequence: 0, delta: 'a' });

    const open = async (lastEventId?: string) => {
      const res = await fetch(`${api.url}/v1/predictions/${id}/stream`, { headers: lastEventId ? { 'last-event-id': lastEventId } : {} });
      const events: SseEvent[] = [];
      const done = (async () => {
        for await (const e of readSse(res)) events.push(e);
      })();
      return { events, done };
    };
    const one = await open();
    await new Promise((r) => setTimeout(r, 300));
    const withOne = await readsDuring(1000);

    const many = [...(await Promise.all(Array.from({ length: 39 }, (_, k) => open(k % 2 === 0 ? undefined : '0')))), one];
    await new Promise((r) => setTimeout(r, 300));
    const withMany = await readsDuring(1000);
    // one watcher reads the log and the record at most once per poll: 40 pollers would read 40 times as much
    expect(withOne).toBeGreaterThan(0);
    expect(withMany).toBeLessThanOrEqual(2 * (1000 / POLL_MS) + 4);

    await h.predictions.appendEvent(id, { type: 'text', sequence: 0, delta: 'b' });
    await h.predictions.update(id, (r) => ({ ...r, status: 'succeeded', completed_at: new Date().toISOString() }));
    await h.predictions.appendEvent(id, { type: 'done', status: 'succeeded' });
    await Promise.all(many.map((s) => s.done));
    for (const [k, s] of many.entries()) {
      const resumed = k % 2 === 1 && k < 39;
      const texts = s.events.filter((e) => e.event === 'text').map((e) => JSON.parse(e.data).delta);
      expect(texts).toEqual(['a', 'b']); // resumed after seq 0 (the status event), both texts still come
      expect(s.events.filter((e) => e.id !== undefined).map((e) => Number(e.id))).toEqual(resumed ? [1, 2, 3] : [0, 1, 2, 3]);
      expect(s.events.at(-1)!.event).toBe('done');
    }
  }, 60_000);
});
