/**
 * The reference sampler in plain JavaScript, written from the HF / Meta processors rather than
 * from the graph: penalty → mask → temperature → top-k → softmax → top-p → multinomial(u).
 */
export interface ReferenceRow {
  logits: number[];
  allowed: boolean[];
  temperature: number;
  topP: number;
  topK: number;
  greedy: boolean;
  uniform: number;
  penalty?: number;
  seen?: boolean[];
  bias?: number[];
}

export function referenceSample(row: ReferenceRow): number {
  const f = Math.fround;
  const logits = row.logits.map((s, j) => {
    let v = s;
    if (row.penalty !== undefined && row.seen?.[j]) v = v < 0 ? f(v * row.penalty) : f(v / row.penalty);
    if (row.bias) v = f(v + row.bias[j]);
    return row.allowed[j] ? v : -3.4028234663852886e38;
  });
  if (row.greedy) return logits.indexOf(Math.max(...logits));
  const order = logits.map((_, j) => j).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = row.topK === 0 ? logits.length : Math.min(row.topK, logits.length);
  const top = order.slice(0, k).map((j) => logits[j] / row.temperature);
  const max = Math.max(...top);
  const exps = top.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  const probs = exps.map((e) => e / sum);
  let before = 0;
  const kept: number[] = [];
  for (const p of probs) {
    if (before < row.topP) kept.push(p);
    before += p;
  }
  const total = kept.reduce((a, b) => a + b, 0);
  let running = 0;
  for (let i = 0; i < kept.length; i++) {
    running += kept[i];
    if (running > row.uniform * total) return order[i];
  }
  return order[kept.length - 1];
}
