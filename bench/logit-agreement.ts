/**
 * How close a model's next-token distributions stay to a reference's: over rows of [rows × V]
 * logits, the mean KL(p ‖ q) of their softmaxes and the share of rows whose most likely token is
 * the same. The precision bench prints both; the bundle tests bound them.
 */
export function logitAgreement(p: Float32Array, q: Float32Array, V: number): { kl: number; top1: number } {
  if (!Number.isInteger(V) || V < 1 || p.length === 0 || p.length % V !== 0 || q.length !== p.length) {
    throw new RangeError(`logitAgreement: logits of ${p.length} and ${q.length} values are not equal [rows × ${V}] arrays`);
  }
  const rows = p.length / V;
  let kl = 0;
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    const [lp, lq] = [logSumExp(p, r * V, V), logSumExp(q, r * V, V)];
    let am = 0;
    let bm = 0;
    for (let v = 0; v < V; v++) {
      const i = r * V + v;
      const logP = p[i] - lp;
      kl += Math.exp(logP) * (logP - (q[i] - lq));
      if (p[i] > p[r * V + am]) am = v;
      if (q[i] > q[r * V + bm]) bm = v;
    }
    if (am === bm) agree++;
  }
  return { kl: kl / rows, top1: agree / rows };
}

/** log Σ exp(x[from … from+n)), shifted by the row's maximum so that no exp overflows. */
function logSumExp(x: Float32Array, from: number, n: number): number {
  let max = -Infinity;
  for (let v = from; v < from + n; v++) max = Math.max(max, x[v]);
  let sum = 0;
  for (let v = from; v < from + n; v++) sum += Math.exp(x[v] - max);
  return max + Math.log(sum);
}
