import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { abortAfter } from '../functions/api/abort-after.ts';

describe('abortAfter (the API streams’ deadline)', () => {
  // the clock is the test's: exactly at its time, never a real 30 ms against a real 80 ms
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('aborts after its time with a TimeoutError, or with the parent’s reason when the parent aborts first', () => {
    const timed = abortAfter(30, new AbortController().signal);
    vi.advanceTimersByTime(29);
    expect(timed.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(timed.signal.reason).toMatchObject({ name: 'TimeoutError', message: 'timed out after 30 ms' });

    const parent = new AbortController();
    const early = abortAfter(10_000, parent.signal);
    parent.abort(new Error('hung up'));
    expect(early.signal.reason).toEqual(new Error('hung up'));
    early.clear();

    const gone = new AbortController();
    gone.abort(new Error('already'));
    expect(abortAfter(10_000, gone.signal).signal.reason).toEqual(new Error('already'));
  });

  it('clear() stops it, and a parent aborting afterwards no longer reaches it', () => {
    const parent = new AbortController();
    const cleared = abortAfter(30, parent.signal);
    cleared.clear();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    parent.abort(new Error('later'));
    expect(cleared.signal.aborted).toBe(false);
  });

  it('still fires after a garbage collection (AbortSignal.any with AbortSignal.timeout may not, on Node 20)', () => {
    // in a fresh node with gc exposed: a collection between the start and the deadline; real
    // timers there, but no race: node runs timers in the order of their deadlines (50, 200, 600 ms)
    const script = `
      const { abortAfter } = await import(${JSON.stringify(new URL('../functions/api/abort-after.ts', import.meta.url).href)});
      const { signal } = abortAfter(200, new AbortController().signal);
      setTimeout(() => globalThis.gc(), 50);
      setTimeout(() => console.log(signal.aborted ? signal.reason.name : 'not aborted'), 600);
    `;
    const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx/esm', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(out.trim()).toBe('TimeoutError');
  });
});
