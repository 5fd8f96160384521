import { TERMINAL, type PredictionEvent, type PredictionRecord } from '../../contract/prediction.ts';
import type { PredictionStore, SequencedEvent } from '../../contract/prediction-store.ts';

/**
 * The API never talks to a worker: it learns what happened by reading the store, the record for
 * waits (Prefer: wait, the OpenAI endpoints) and the event log for streams.
 */
type Store = Pick<PredictionStore, 'get' | 'readEvents'>;

// The abort listener goes when the timer fires: a long wait polls many times on one signal (a
// request's, joined to the server's shutdown), and listeners left behind leaked and set off
// MaxListenersExceededWarning after ten polls.
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** The record once terminal, or as it is when `timeoutMs` runs out or `signal` aborts. */
export async function waitForTerminal(store: Store, id: string, opts: { timeoutMs: number; pollMs: number; signal?: AbortSignal }): Promise<PredictionRecord> {
  const until = Date.now() + opts.timeoutMs;
  for (;;) {
    const current = await store.get(id);
    if (!current) throw new Error(`prediction ${id} vanished`);
    if (TERMINAL.has(current.value.status) || Date.now() >= until || opts.signal?.aborted) return current.value;
    await sleep(Math.min(opts.pollMs, until - Date.now()), opts.signal);
  }
}

/** A log event, or one made up from the record (seq null): a prediction that ended without a `done` in its log. */
export type FollowedEvent = SequencedEvent | { seq: null; event: PredictionEvent };

/**
 * The prediction's events after `afterSeq`, in order, as they are written, ending with `done`.
 * A prediction that ends without logging `done` (aborted or canceled before it started, a worker
 * that died) still ends the stream: once the record is terminal and the log stays quiet for
 * `graceMs`, a `done` with the record's status is made up.
 */
export async function* followEvents(
  store: Store,
  id: string,
  opts: { afterSeq: number; pollMs: number; graceMs?: number; signal?: AbortSignal },
): AsyncGenerator<FollowedEvent> {
  const graceMs = opts.graceMs ?? Math.max(1000, 5 * opts.pollMs);
  let after = opts.afterSeq;
  let quietSince: number | null = null;
  while (!opts.signal?.aborted) {
    const events = await store.readEvents(id, after);
    for (const e of events) {
      yield e;
      after = e.seq;
      if (e.event.type === 'done') return;
    }
    if (events.length > 0) quietSince = null;
    else {
      const record = (await store.get(id))?.value;
      if (!record) return;
      if (TERMINAL.has(record.status)) {
        quietSince ??= Date.now();
        if (Date.now() - quietSince >= graceMs) {
          if (record.error) yield { seq: null, event: { type: 'error', message: record.error } };
          yield { seq: null, event: { type: 'done', status: record.status } };
          return;
        }
      }
    }
    await sleep(opts.pollMs, opts.signal);
  }
}
