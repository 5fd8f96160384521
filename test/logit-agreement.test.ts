import { describe, expect, it } from 'vitest';
import { logitAgreement } from '../bench/logit-agreement.ts';

describe('logitAgreement (mean KL and top-1 agreement, for the precision bench and the bundle tests)', () => {
  it('is 0 and 1 for the same distributions, whatever constant each row is shifted by', () => {
    const p = Float32Array.from([1, 2, 3, -4, 0, 5]);
    const shifted = Float32Array.from([101, 102, 103, -10, -6, -1]);
    const same = logitAgreement(p, shifted, 3);
    expect(same.kl).toBeCloseTo(0, 6);
    expect(same.top1).toBe(1);
  });

  it('averages KL(p ‖ q) over rows and counts the rows whose arg-max agrees', () => {
    // row 0: p = (1/2, 1/2), q = (1/5, 4/5); row 1: p = (3/4, 1/4), q = (3/4, 1/4)
    const p = Float32Array.from([0, 0, Math.log(3), 0]);
    const q = Float32Array.from([0, Math.log(4), Math.log(3), 0]);
    const kl0 = 0.5 * Math.log(0.5 / 0.2) + 0.5 * Math.log(0.5 / 0.8);
    const { kl, top1 } = logitAgreement(p, q, 2);
    expect(kl).toBeCloseTo(kl0 / 2, 6);
    expect(top1).toBe(0.5); // row 0: a tie in p goes to the first token, q prefers the second
  });

  it('stays finite on logits far beyond exp\'s range', () => {
    const { kl, top1 } = logitAgreement(Float32Array.from([1000, 0]), Float32Array.from([0, 1000]), 2);
    expect(kl).toBeCloseTo(1000, 3);
    expect(top1).toBe(0);
  });

  it('names arrays that do not match', () => {
    expect(() => logitAgreement(new Float32Array(6), new Float32Array(4), 2)).toThrow('logitAgreement: logits of 6 and 4 values are not equal [rows × 2] arrays');
    expect(() => logitAgreement(new Float32Array(5), new Float32Array(5), 2)).toThrow(RangeError);
  });
});
