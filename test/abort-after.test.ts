import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { abortAfter } from '../functions/api/abort-after.ts';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('abortAfter (the API streams’ deadline)', () => {
  it('aborts after its time with a TimeoutError, or with the parent’s reason when the parent aborts first', async () => {
    const timed = abortAfter(30, new AbortController().signal);
    expect(timed.signal.aborted).toBe(false);
    await wait(80);
    expect(timed.signal.reason).toMatchObject({ name: 'TimeoutError' });

    const parent = new AbortController();
    const early = abortAfter(10_000, parent.signal);
    parent.abort(new Error('hung up'));
    expect(early.signal.reason).toEqual(new Error('hung up'));
    early.clear();

    const gone = new AbortController();
    gone.abort(new Error('already'));
    expect(abortAfter(10_000, gone.signal).signal.reason).toEqual(new Error('already'));
  });

  it('clear() stops it', async () => {
    const cleared = abortAfter(30, new AbortController().signal);
    cleared.clear();
    await wait(80);
    expect(cleared.signal.aborted).toBe(false);
  });

  it('still fires after a garbage collection (AbortSignal.any with AbortSignal.timeout may not, on Node 20)', () => {
    // in a fresh node with gc exposed: a collection between the start and the deadline
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
