import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';

/** y = x + 1 over float32 [n] ('n' symbolic when not given). */
export function addOneGraph(n: number | string = 'n') {
  const g = new GraphBuilder('add_one');
  const x = g.input('x', DataType.FLOAT, [n]);
  g.op('Add', [x, g.float(1)], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [n]);
  return g.build();
}

/** y = x * (2 + 3): constant folding removes the Add (named "folded_add") unless optimization is off. */
export function foldableGraph() {
  const g = new GraphBuilder('foldable');
  const x = g.input('x', DataType.FLOAT, [2]);
  const five = g.op('Add', [g.float(2), g.float(3)], {}, { name: 'folded_add' });
  g.op('Mul', [x, five], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [2]);
  return g.build();
}

/** Two branches: xb = Cast(x: float → bfloat16), hf = Cast(hb: bfloat16 → float). */
export function bf16CastGraph(n: number) {
  const g = new GraphBuilder('bf16_cast');
  const x = g.input('x', DataType.FLOAT, [n]);
  const hb = g.input('hb', DataType.BFLOAT16, [n]);
  g.op('Cast', [x], { to: DataType.BFLOAT16 }, { output: 'xb' });
  g.op('Cast', [hb], { to: DataType.FLOAT }, { output: 'hf' });
  g.output('xb', DataType.BFLOAT16, [n]);
  g.output('hf', DataType.FLOAT, [n]);
  return g.build();
}

export interface GqaShape {
  batch: number;
  heads: number;
  headSize: number;
  maxSeq: number;
}

/**
 * One decode step of com.microsoft GroupQueryAttention (fp32, no rotary, kv heads = heads): the new
 * key/value go to position seqlens_k[b] of each row's cache; past and present may share a buffer.
 */
export function gqaGraph({ batch: B, heads: H, headSize: D, maxSeq: S }: GqaShape) {
  const g = new GraphBuilder('gqa_step');
  const inputs = [
    g.input('query', DataType.FLOAT, [B, 1, H * D]),
    g.input('key', DataType.FLOAT, [B, 1, H * D]),
    g.input('value', DataType.FLOAT, [B, 1, H * D]),
    g.input('past_key', DataType.FLOAT, [B, H, S, D]),
    g.input('past_value', DataType.FLOAT, [B, H, S, D]),
    g.input('seqlens_k', DataType.INT32, [B]),
    g.input('total_sequence_length', DataType.INT32, []),
  ];
  g.node('GroupQueryAttention', inputs, { num_heads: H, kv_num_heads: H, do_rotary: 0 }, { domain: 'com.microsoft', outputs: ['output', 'present_key', 'present_value'] });
  g.output('output', DataType.FLOAT, [B, 1, H * D]);
  g.output('present_key', DataType.FLOAT, [B, H, S, D]);
  g.output('present_value', DataType.FLOAT, [B, H, S, D]);
  return g.build();
}

/**
 * Attention of one new query per row over that row's cache positions 0..seqlens_k[b], where position
 * seqlens_k[b] holds the new key/value (what GQA writes there), scaled by 1/sqrt(D): the JS reference.
 */
export function referenceAttention(
  shape: GqaShape,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  pastK: Float32Array,
  pastV: Float32Array,
  seqlens: Int32Array,
): Float32Array {
  const { batch: B, heads: H, headSize: D, maxSeq: S } = shape;
  const out = new Float32Array(B * H * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const p = seqlens[b];
      const at = (cache: Float32Array, fresh: Float32Array, t: number, d: number) => (t === p ? fresh[(b * H + h) * D + d] : cache[((b * H + h) * S + t) * D + d]);
      const scores = Array.from({ length: p + 1 }, (_, t) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(b * H + h) * D + d] * at(pastK, k, t, d);
        return dot / Math.sqrt(D);
      });
      const max = Math.max(...scores);
      const weights = scores.map((s) => Math.exp(s - max));
      const sum = weights.reduce((a, c) => a + c, 0);
      for (let d = 0; d < D; d++) out[(b * H + h) * D + d] = weights.reduce((a, w, t) => a + (w / sum) * at(pastV, v, t, d), 0);
    }
  }
  return out;
}

/** Deterministic values in [-1, 1). */
export function pseudoRandom(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}
