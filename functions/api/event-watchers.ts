import { followEvents, type FollowedEvent } from './follow-prediction.ts';
import type { PredictionStore } from '../../contract/prediction-store.ts';

/**
 * One watcher per prediction, shared by all its event streams in this process: the store is polled
 * once per `pollMs` for the prediction however many clients listen, and each listener is served from
 * what the watcher has read. A watcher reads from where its first listener resumes (Last-Event-ID), not
 * from the log's start: a client that reconnects every few seconds must not make the whole log be read
 * again each time; a later listener that resumes from further back reads that part itself, once. A
 * watcher ends at the prediction's `done`, or `lingerMs` after its last listener left: a client whose
 * stream the server ended (maxStreamSeconds) comes back to what the watcher read meanwhile, even when
 * one read of a long log takes longer than a stream lasts.
 */
type Store = Pick<PredictionStore, 'get' | 'readEvents'>;

interface Watcher {
  /** It reads events after this seq. */
  startSeq: number;
  events: FollowedEvent[];
  ended: boolean;
  listeners: number;
  stop: AbortController;
  /** Resolved (and replaced) whenever events arrive or the watcher ends. */
  changed: Promise<void>;
}

export class EventWatchers {
  private readonly watchers = new Map<string, Watcher>();

  constructor(
    private readonly store: Store,
    private readonly opts: { pollMs: number; graceMs?: number; lingerMs?: number },
  ) {}

  /** The prediction's events after `afterSeq` until `done`, or until `signal` aborts. */
  async *follow(id: string, opts: { afterSeq: number; signal: AbortSignal }): AsyncGenerator<FollowedEvent> {
    const w = this.watcher(id, opts.afterSeq);
    w.listeners++;
    let next = 0; // index into w.events
    try {
      if (opts.afterSeq < w.startSeq) {
        for (const e of await this.store.readEvents(id, opts.afterSeq)) {
          if (e.seq > w.startSeq) break; // the watcher has those
          yield e;
          if (e.event.type === 'done') return;
        }
      }
      const aborted = new Promise<void>((r) => (opts.signal.aborted ? r() : opts.signal.addEventListener('abort', () => r(), { once: true })));
      while (!opts.signal.aborted) {
        for (; next < w.events.length; next++) {
          const e = w.events[next];
          if (e.seq === null || e.seq > opts.afterSeq) yield e;
          if (e.event.type === 'done') return;
        }
        if (w.ended) return;
        await Promise.race([w.changed, aborted]);
      }
    } finally {
      if (--w.listeners === 0) {
        const linger = setTimeout(() => {
          if (w.listeners > 0) return; // someone came back
          w.stop.abort();
          if (this.watchers.get(id) === w) this.watchers.delete(id);
        }, this.opts.lingerMs ?? Math.max(2000, 10 * this.opts.pollMs));
        linger.unref();
      }
    }
  }

  /** How many predictions are being watched (one poller each). */
  get size(): number {
    return this.watchers.size;
  }

  private watcher(id: string, afterSeq: number): Watcher {
    const existing = this.watchers.get(id);
    if (existing && !existing.stop.signal.aborted) return existing;
    let wake = () => {};
    const w: Watcher = { startSeq: afterSeq, events: [], ended: false, listeners: 0, stop: new AbortController(), changed: new Promise((r) => (wake = r)) };
    const notify = () => {
      const done = wake;
      w.changed = new Promise((r) => (wake = r));
      done();
    };
    this.watchers.set(id, w);
    void (async () => {
      try {
        for await (const e of followEvents(this.store, id, { afterSeq, pollMs: this.opts.pollMs, graceMs: this.opts.graceMs, signal: w.stop.signal })) {
          w.events.push(e);
          notify();
        }
      } catch {
        // storage failing: listeners end, and clients reconnect with Last-Event-ID
      } finally {
        w.ended = true;
        if (this.watchers.get(id) === w) this.watchers.delete(id);
        notify();
      }
    })();
    return w;
  }
}
