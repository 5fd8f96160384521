import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from '../contract/serve-http.ts';
import { readSse, startApiHarness, type ApiHarness, type SseEvent } from './api-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * The API stopping (SIGTERM to `npm start`, issue 18, item 6) with clients waiting: a `Prefer: wait`
 * request is answered 202 with the prediction as it stands, and an event stream ends with an event
 * that tells its client to reconnect or poll, instead of both being cut off.
 */
let h: ApiHarness;
beforeAll(async () => {
  h = await startApiHarness();
}, 60_000);
afterAll(async () => h?.stop());

describe('shutdown', () => {
  it('answers waits with 202 and ends streams with a reconnect event', async () => {
    const shutdown = new AbortController();
    const api = await serveApi(h.makeApp({ shutdown: shutdown.signal, limits: { pollMs: 50 } }), { shutdown });
    const post = (headers: Record<string, string> = {}) =>
      fetch(`${api.url}/v1/predictions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ input: { prompt: 'no worker', max_new_tokens: 3 } }) });
    const created = (await (await post()).json()) as { id: string; urls: { get: string } };
    const stream = await fetch(`${api.url}/v1/predictions/${created.id}/stream`);
    const events: SseEvent[] = [];
    const streamed = (async () => {
      for await (const e of readSse(stream)) events.push(e);
    })();
    const waiting = post({ prefer: 'wait=30' });
    // stopped once the waiting request's prediction exists (its handler is under way), not after a guessed half second
    const listed = async () => ((await (await fetch(`${api.url}/v1/predictions`)).json()) as { results: unknown[] }).results.length;
    await waitUntil(async () => (await listed()) === 2, 10_000, "the waiting request's prediction");

    const started = Date.now();
    await api.close();
    const answer = await waiting;
    expect(answer.status).toBe(202);
    const body = (await answer.json()) as { status: string; id: string };
    expect(body.status).toBe('starting');
    await streamed;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(events[0].event).toBe('status');
    const last = events.at(-1)!;
    expect(last.event).toBe('reconnect');
    expect(JSON.parse(last.data)).toMatchObject({ reason: expect.stringMatching(/shutting down/), poll: created.urls.get });
    await expect(fetch(`${api.url}/healthz`)).rejects.toThrow(); // and then it is closed
  }, 30_000);
});
