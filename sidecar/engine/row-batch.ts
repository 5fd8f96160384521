/**
 * The rows of a running batch as plain typed arrays, between two chunks: what the Loop graph
 * carries (last hidden states, attention mask, next positions, KV cache). Rows join (a new request,
 * guidance streams at boi) and leave (a finished sequence) only here, at chunk boundaries.
 * Rows are left-padded to one length S: pad columns have mask 0 and zero keys/values.
 * The hidden states and the cache are float32, or raw float16 / bfloat16 bits (Uint16Array) from a
 * GPU build's graphs.
 */
export type CacheArray = Float32Array | Uint16Array;

export interface RowBatch {
  rows: number;
  /** S: cached positions per row, padding included. */
  length: number;
  hiddenSize: number;
  heads: number;
  headDim: number;
  hidden: CacheArray; // [R, C] each row's last hidden state
  mask: BigInt64Array; // [R, S]
  positions: BigInt64Array; // [R] position of each row's next token
  keys: CacheArray[]; // per layer [R, Hkv, S, D]
  values: CacheArray[];
}

export function emptyBatch(layers: number, hiddenSize: number, heads: number, headDim: number, halfCache = false): RowBatch {
  const cache = () => (halfCache ? new Uint16Array(0) : new Float32Array(0));
  return {
    rows: 0, length: 0, hiddenSize, heads, headDim,
    hidden: cache(), mask: new BigInt64Array(0), positions: new BigInt64Array(0),
    keys: Array.from({ length: layers }, cache),
    values: Array.from({ length: layers }, cache),
  };
}

/** A batch of `source` rows picked in the given order, left-padded (or trimmed) to `length`. */
function gather(sources: { batch: RowBatch; row: number }[], length: number, template: RowBatch): RowBatch {
  const { hiddenSize: C, heads: H, headDim: D } = template;
  const R = sources.length;
  const like = (n: number) => (template.hidden instanceof Uint16Array ? new Uint16Array(n) : new Float32Array(n));
  const out: RowBatch = {
    ...emptyBatch(template.keys.length, C, H, D),
    rows: R,
    length,
    hidden: like(R * C),
    mask: new BigInt64Array(R * length),
    positions: new BigInt64Array(R),
  };
  out.keys = template.keys.map(() => like(R * H * length * D));
  out.values = template.values.map(() => like(R * H * length * D));
  sources.forEach(({ batch: src, row }, r) => {
    const S = src.length;
    // copy the last min(S, length) columns; a longer target gets zero columns on the left
    const keep = Math.min(S, length);
    const from = S - keep;
    const to = length - keep;
    (out.hidden as Float32Array).set(src.hidden.subarray(row * C, (row + 1) * C) as Float32Array, r * C);
    out.mask.set(src.mask.subarray(row * S + from, (row + 1) * S), r * length + to);
    out.positions[r] = src.positions[row];
    for (let l = 0; l < template.keys.length; l++) {
      for (let h = 0; h < H; h++) {
        const srcStart = ((row * H + h) * S + from) * D;
        const dstStart = ((r * H + h) * length + to) * D;
        (out.keys[l] as Float32Array).set(src.keys[l].subarray(srcStart, srcStart + keep * D) as Float32Array, dstStart);
        (out.values[l] as Float32Array).set(src.values[l].subarray(srcStart, srcStart + keep * D) as Float32Array, dstStart);
      }
    }
  });
  return out;
}

/** Keeps the given rows, in the given order, and drops the padding columns no kept row needs. */
export function selectRows(batch: RowBatch, rows: number[]): RowBatch {
  const S = batch.length;
  let needed = 0;
  for (const row of rows) {
    const first = batch.mask.subarray(row * S, (row + 1) * S).findIndex((m) => m !== 0n);
    needed = Math.max(needed, first < 0 ? 0 : S - first);
  }
  return gather(rows.map((row) => ({ batch, row })), needed, batch);
}

/** All rows of `a` followed by all rows of `b`, left-padded to the longer length. */
export function appendRows(a: RowBatch, b: RowBatch): RowBatch {
  if (a.rows === 0) return b;
  if (b.rows === 0) return a;
  const rows = [
    ...Array.from({ length: a.rows }, (_, row) => ({ batch: a, row })),
    ...Array.from({ length: b.rows }, (_, row) => ({ batch: b, row })),
  ];
  return gather(rows, Math.max(a.length, b.length), a);
}
