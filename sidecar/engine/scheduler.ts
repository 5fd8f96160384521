import { setImmediate } from 'node:timers/promises';
import type { AnoleConfig } from '../../model/config.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import type { HeadKind } from '../graphs/head-inputs.ts';
import type { GenerateOptions } from './generation-engine.ts';
import { acceptToken, finishSequence, rowPrompts, startSequence, type GenerationEvent, type RowRole, type Sequence } from './sequence.ts';
import type { SlotBatch } from './slot-batch.ts';

/** How long the scheduler may hold its thread before it lets queued messages and timers run. */
const EVENT_LOOP_TURN_MS = 10;

export interface SchedulerOptions {
  /**
   * Prompt tokens prefilled between two decode steps while other rows decode (the stall a joining
   * prompt may cause them). A prompt is cut into chunks of this size from its start, whatever else
   * runs, so that its cache and output do not depend on the company it keeps.
   */
  prefillChunk: number;
}

/** One generate() call: its sequences, and the events it has not been handed yet. */
interface Call {
  sequences: Sequence[];
  chunkSize: number;
  signal?: AbortSignal;
  onAdmitted?: (sequence: number) => void;
  /** Set when the caller stops reading: its sequences are canceled. */
  abandoned: boolean;
  events: GenerationEvent[];
  mailbox: Mailbox<GenerationEvent[]>;
  steps: number;
  sinceFlush: number;
  open: number;
}

/** A sequence from admission to its end. */
interface Entry {
  seq: Sequence;
  call: Call;
  roles: RowRole[];
  /** Its prefill runs in order (see admit), and how many have run. */
  prefill: { slot: number; tokens: number[] }[][];
  prefilled: number;
  state: 'queued' | 'prefill' | 'running';
  /** Its group (the index of its token in a step's result), from admission on. */
  group: number;
}

/**
 * Continuous batching (docs/engine-v2.md): generate() calls join a running batch at any step. Each
 * call's sequences queue in order of arrival (FIFO: a sequence never waits behind a later one),
 * take their slots as soon as enough are free, prefill their prompts in chunks between decode steps,
 * decode with whatever else is running, and leave (their slots freed) the step they end: at EOS, at
 * their length, when canceled, or when their call's reader stops. A sequence's tokens depend on its
 * request and seed only: every row's step, the head's token choice per group and the prefill's chunk
 * boundaries are the same whichever rows share the batch.
 */
export class Scheduler {
  private readonly queue: Entry[] = [];
  private readonly admitted: Entry[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly c: AnoleConfig,
    /** The engine's slots (made at first use, again after a failed run). */
    private readonly batch: () => SlotBatch,
    private readonly dropBatch: () => void,
    private readonly imageIds: Set<number>,
    private readonly codeOf: Int32Array,
    private readonly headFor: (live: Sequence[]) => HeadKind,
    private readonly opts: SchedulerOptions,
  ) {}

  /** Sequences waiting for slots, and those admitted (prefilling or decoding). */
  get load(): { queued: number; admitted: number } {
    return { queued: this.queue.length, admitted: this.admitted.length };
  }

  /** Queues a call's sequences; its events arrive through the returned generator. */
  async *generate(requests: SequenceRequest[], opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    if (requests.length === 0) return;
    const chunkSize = opts.chunkSize ?? this.c.vq.quantStateDims[1];
    if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`);
    const sequences = requests.map((r, i) => startSequence(this.c, r, i));
    const { slots, context } = this.batch().capacity;
    for (const s of sequences) {
      const need = s.request.promptIds.length + s.request.maxNewTokens;
      if (need > context) throw new Error(`prompt (${s.request.promptIds.length} tokens) + max_new_tokens (${s.request.maxNewTokens}) does not fit the engine's ${context}-token cache slots`);
      if (rolesOf(s).length > slots) throw new Error(`a guided sequence needs 3 cache slots; the engine has ${slots}`);
    }
    const call: Call = { sequences, chunkSize, signal: opts.signal, onAdmitted: opts.onAdmitted, abandoned: false, events: [], mailbox: new Mailbox(), steps: 0, sinceFlush: 0, open: sequences.length };
    for (const seq of sequences) this.queue.push({ seq, call, roles: rolesOf(seq), prefill: [], prefilled: 0, state: 'queued', group: -1 });
    // the loop's failure reaches every call through its mailbox
    this.running ??= this.loop().catch(() => undefined).finally(() => (this.running = undefined));
    try {
      for await (const events of call.mailbox) yield* events;
    } finally {
      call.abandoned = true; // a reader that stops early cancels what is left
    }
  }

  private async loop(): Promise<void> {
    let lastTurn = performance.now();
    let delivered = false;
    try {
      while (this.queue.length + this.admitted.length > 0) {
        // runs are synchronous: let the thread's event loop in now and then (new calls and cancels arrive
        // as messages), and after events went out, so that their readers may cancel before the next step
        if (delivered || performance.now() - lastTurn > EVENT_LOOP_TURN_MS) {
          delivered = false;
          await setImmediate();
          lastTurn = performance.now();
        }
        this.endFinished();
        this.moveGuidanceRows();
        this.admit();
        this.prefillSome();
        delivered = this.flush(hasUrgentEvents) || delivered;

        const live = this.admitted.filter((e) => e.state === 'running' && !e.seq.done);
        if (live.length === 0) continue;
        const batch = this.batch();
        const tokens = batch.choose(this.headFor(live.map((e) => e.seq)));
        const stepped = new Set<Call>();
        for (const { seq: s, call, group } of live) {
          const token = tokens[group];
          s.seen[token] = 1; // the head marked it on its side too
          s.counts[token]++;
          acceptToken(this.c, this.codeOf, s, token, call.events);
          stepped.add(call);
        }
        // events go out after a call's first step, every chunk of steps, and at once when a sequence
        // finishes or an image opens or closes (consecutive text merges)
        for (const call of stepped) call.sinceFlush++;
        delivered = this.flush((call) => stepped.has(call) && (call.steps++ === 0 || call.sinceFlush >= call.chunkSize || hasUrgentEvents(call)));
        // readers get their tokens before the decoder step that only the next token needs
        if (delivered) {
          delivered = false;
          await setImmediate();
          lastTurn = performance.now();
        }
        batch.advance();
      }
      this.endFinished();
    } catch (e) {
      for (const entry of [...this.queue.splice(0), ...this.admitted.splice(0)]) entry.call.mailbox.fail(e as Error);
      this.dropBatch(); // its state is unknown now: the next call starts a fresh one
      throw e;
    }
  }

  /** Cancels what was asked to stop; frees the slots of sequences that ended; ends calls with nothing left. */
  private endFinished(): void {
    for (const list of [this.queue, this.admitted]) {
      for (const e of [...list]) {
        const s = e.seq;
        if (!s.done && (e.call.abandoned || e.call.signal?.aborted || s.request.signal?.aborted)) finishSequence(s, 'canceled', e.call.events);
        if (!s.done) continue;
        list.splice(list.indexOf(e), 1);
        if (e.state !== 'queued') this.batch().free(s);
        if (--e.call.open === 0) {
          e.call.mailbox.push(e.call.events.splice(0));
          e.call.mailbox.close();
        }
      }
    }
  }

  /** Guidance rows stop when a guided image closes, and join (prefilled whole) when one opens. */
  private moveGuidanceRows(): void {
    const batch = this.batch();
    for (const { seq: s, state } of this.admitted) {
      if (state !== 'running' || !s.guided) continue;
      if (s.hasGuidanceRows && s.imageCount < 0) {
        for (const role of ['image', 'uncond'] as const) batch.retire(batch.slotOf(s, role));
        s.hasGuidanceRows = false;
      }
      if (s.imageCount === 0 && !s.hasGuidanceRows) {
        for (const { role, prompt } of rowPrompts(this.c, this.imageIds, s, ['image', 'uncond'])) {
          batch.prefill(batch.slotOf(s, role), prompt);
          batch.activate(batch.slotOf(s, role));
        }
        s.hasGuidanceRows = true;
      }
    }
  }

  /**
   * Sequences take their slots in order of arrival while enough are free. Each row's prompt is cut
   * into chunks from its start; the last chunks of all its rows run together, the iteration it starts
   * decoding: a decode step in between would overwrite a finished row's hidden state.
   */
  private admit(): void {
    const batch = this.batch();
    const size = this.opts.prefillChunk;
    while (this.queue.length > 0) {
      const group = batch.reserve(this.queue[0].seq, this.queue[0].roles);
      if (group === undefined) break; // the first in line waits: no later one passes it
      const e = this.queue.shift()!;
      e.group = group;
      const roles: RowRole[] = e.seq.hasGuidanceRows ? ['full', 'image', 'uncond'] : ['full'];
      const rows = rowPrompts(this.c, this.imageIds, e.seq, roles).map(({ role, prompt }) => ({
        slot: batch.slotOf(e.seq, role),
        chunks: Array.from({ length: Math.ceil(prompt.length / size) }, (_, i) => prompt.slice(i * size, (i + 1) * size)),
      }));
      e.prefill = [
        ...rows.flatMap(({ slot, chunks }) => chunks.slice(0, -1).map((tokens) => [{ slot, tokens }])),
        rows.map(({ slot, chunks }) => ({ slot, tokens: chunks[chunks.length - 1] })),
      ];
      e.state = 'prefill';
      this.admitted.push(e);
      e.call.onAdmitted?.(e.seq.index);
    }
  }

  /**
   * Prefills in order of admission until `prefillChunk` tokens have gone in (a run at least;
   * everything when nothing decodes meanwhile). A sequence whose prompts are all in starts decoding.
   */
  private prefillSome(): void {
    const batch = this.batch();
    const decoding = this.admitted.some((e) => e.state === 'running');
    let budget = decoding ? this.opts.prefillChunk : Infinity;
    for (const e of this.admitted) {
      if (e.state !== 'prefill') continue;
      while (e.prefilled < e.prefill.length && budget > 0) {
        for (const { slot, tokens } of e.prefill[e.prefilled++]) {
          batch.prefill(slot, tokens);
          budget -= tokens.length;
        }
      }
      if (e.prefilled === e.prefill.length) {
        for (const { slot } of e.prefill[e.prefill.length - 1]) batch.activate(slot);
        e.state = 'running';
        batch.setLive(e.seq, true);
        if (e.seq.imageCount === 0) e.call.events.push({ type: 'image_start', sequence: e.seq.index });
      }
      if (budget <= 0) break;
    }
  }

  /** Hands each call its events when `when` says so; true if any went out. */
  private flush(when: (call: Call) => boolean): boolean {
    let any = false;
    for (const call of new Set(this.admitted.map((e) => e.call))) {
      if (call.events.length > 0 && when(call)) {
        call.sinceFlush = 0;
        call.mailbox.push(call.events.splice(0));
        any = true;
      }
    }
    return any;
  }
}

/** Events that go out at once: anything but text and image rows (a sequence ended, an image opened or closed). */
function hasUrgentEvents(call: Call): boolean {
  return call.events.some((e) => e.type !== 'text' && e.type !== 'image_rows');
}

/** The slots a sequence holds for its whole life: three when guided (full, image-only, unconditioned). */
function rolesOf(s: Sequence): RowRole[] {
  return s.guided ? ['full', 'image', 'uncond'] : ['full'];
}

/** A queue one producer pushes to and one reader iterates; ends with close() or fail(). */
class Mailbox<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private ended = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  close(): void {
    this.ended = true;
    this.wake?.();
  }

  fail(error: Error): void {
    this.error = error;
    this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift()!;
        continue;
      }
      if (this.error) throw this.error;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
