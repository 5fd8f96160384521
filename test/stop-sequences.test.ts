import { describe, expect, it } from 'vitest';
import { StopSequences } from '../sidecar/worker/stop-sequences.ts';

/** The job runner's stop strings, fed text in deltas as the engine produces it. */
const run = (stops: string[], deltas: string[]) => {
  const s = new StopSequences(stops);
  const out = deltas.map((d) => s.push(d));
  return { shown: out.join('') + s.flush(), out, stopped: s.stopped };
};

describe('StopSequences', () => {
  it('ends before the first stop string, also when it spans deltas, and shows nothing after', () => {
    expect(run(['END'], ['Hello E', 'N', 'D and more', ' text'])).toEqual({ shown: 'Hello ', out: ['Hello ', '', '', ''], stopped: true });
    expect(run(['b', 'cd'], ['xxcdb'])).toMatchObject({ shown: 'xxc'.slice(0, 2), stopped: true }); // the earliest match wins, whichever string
  });

  it('holds back only what may start a stop string, and releases it when it does not', () => {
    const r = run(['abc'], ['xa', 'b', 'x', 'y']);
    expect(r.out).toEqual(['x', '', 'abx', 'y']);
    expect(r).toMatchObject({ shown: 'xabxy', stopped: false });
    expect(run(['abc'], ['xab']).shown).toBe('xab'); // the end of the text releases the tail
  });

  it('without stop strings passes text through unchanged', () => {
    expect(run([], ['a', 'b'])).toEqual({ shown: 'ab', out: ['a', 'b'], stopped: false });
  });
});
