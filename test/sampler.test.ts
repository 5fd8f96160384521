import { describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { mixGuidance, sampleTokens } from '../sidecar/graphs/sampler.ts';
import { referenceSample, type ReferenceRow } from './reference/sampler-reference.ts';

// A small deterministic generator for test data (not the production one).
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

async function samplerSession() {
  const g = new GraphBuilder('sampler');
  const V = 'vocab';
  const inputs = {
    logits: g.input('logits', DataType.FLOAT, ['rows', V]),
    allowed: g.input('allowed', DataType.BOOL, ['rows', V]),
    temperature: g.input('temperature', DataType.FLOAT, ['rows']),
    topP: g.input('top_p', DataType.FLOAT, ['rows']),
    topK: g.input('top_k', DataType.INT64, ['rows']),
    greedy: g.input('greedy', DataType.BOOL, ['rows']),
    uniform: g.input('uniform', DataType.FLOAT, ['rows']),
    repetition: { penalty: g.input('penalty', DataType.FLOAT, ['rows']), seen: g.input('seen', DataType.BOOL, ['rows', V]) },
    bias: g.input('bias', DataType.FLOAT, ['rows', V]),
  };
  g.op('Identity', [sampleTokens(g, inputs)], {}, { output: 'token' });
  g.output('token', DataType.INT64, ['rows']);
  return createSession(g.build());
}

function feeds(rows: ReferenceRow[]) {
  const G = rows.length;
  const V = rows[0].logits.length;
  const flat = <T>(f: (r: ReferenceRow) => T[]) => rows.flatMap(f);
  return {
    logits: new ort.Tensor('float32', Float32Array.from(flat((r) => r.logits)), [G, V]),
    allowed: new ort.Tensor('bool', Uint8Array.from(flat((r) => r.allowed.map(Number))), [G, V]),
    temperature: new ort.Tensor('float32', Float32Array.from(rows.map((r) => r.temperature)), [G]),
    top_p: new ort.Tensor('float32', Float32Array.from(rows.map((r) => r.topP)), [G]),
    top_k: new ort.Tensor('int64', BigInt64Array.from(rows.map((r) => BigInt(r.topK))), [G]),
    greedy: new ort.Tensor('bool', Uint8Array.from(rows.map((r) => Number(r.greedy))), [G]),
    uniform: new ort.Tensor('float32', Float32Array.from(rows.map((r) => r.uniform)), [G]),
    penalty: new ort.Tensor('float32', Float32Array.from(rows.map((r) => r.penalty ?? 1)), [G]),
    seen: new ort.Tensor('bool', Uint8Array.from(flat((r) => (r.seen ?? r.logits.map(() => false)).map(Number))), [G, V]),
    bias: new ort.Tensor('float32', Float32Array.from(flat((r) => r.bias ?? r.logits.map(() => 0))), [G, V]),
  };
}

describe('in-graph sampler', () => {
  it('picks exactly the tokens of the reference sampler for every setting', async () => {
    const session = await samplerSession();
    const rand = lcg(7);
    const V = 64;
    const settings = [
      { temperature: 1, topP: 1, topK: 0, greedy: false },
      { temperature: 0.7, topP: 0.9, topK: 0, greedy: false },
      { temperature: 1, topP: 0.9, topK: 0, greedy: false, penalty: 1.2 },
      { temperature: 1.3, topP: 1, topK: 5, greedy: false },
      { temperature: 0.5, topP: 0.5, topK: 10, greedy: false },
      { temperature: 1, topP: 1, topK: 0, greedy: true, penalty: 1.2 },
    ];
    const rows: ReferenceRow[] = [];
    for (let n = 0; n < 300; n++) {
      const s = settings[n % settings.length];
      const logits = Array.from({ length: V }, () => Math.fround((rand() - 0.5) * 8));
      const allowed = logits.map(() => rand() < 0.7);
      const seen = logits.map(() => rand() < 0.2);
      const bias = n % 4 === 0 ? logits.map(() => (rand() < 0.1 ? Math.fround((rand() - 0.5) * 20) : 0)) : undefined;
      rows.push({ ...s, logits, allowed, uniform: Math.fround(rand()), seen: s.penalty ? seen : undefined, bias });
    }
    const out = await session.run(feeds(rows));
    const tokens = Array.from(out.token.data as BigInt64Array, Number);
    const expected = rows.map(referenceSample);
    expect(tokens).toEqual(expected);
    // Every pick is an allowed token, and sampling actually varies (not a constant).
    tokens.forEach((t, n) => expect(rows[n].allowed[t]).toBe(true));
    expect(new Set(tokens).size).toBeGreaterThan(20);
  });

  it('never picks a disallowed token, even with a huge bias on it', async () => {
    const session = await samplerSession();
    const V = 16;
    const logits = Array.from({ length: V }, (_, j) => j / 4);
    const allowed = logits.map((_, j) => j % 2 === 0);
    const bias = logits.map((_, j) => (j === 15 ? 100 : 0));
    const rows = [0.1, 0.5, 0.99].map((uniform) => ({ logits, allowed, bias, uniform, temperature: 1, topP: 1, topK: 0, greedy: false }));
    const out = await session.run(feeds(rows));
    for (const t of out.token.data as BigInt64Array) expect(Number(t) % 2).toBe(0);
  });

  it('mixes guidance streams as u + s_img·(i − u) + s_txt·(f − i), and a self-pointing row is unchanged', async () => {
    const g = new GraphBuilder('cfg');
    const logits = g.input('logits', DataType.FLOAT, [4, 3]);
    const rows = {
      full: g.input('full', DataType.INT64, [2]),
      imageCond: g.input('image_cond', DataType.INT64, [2]),
      uncond: g.input('uncond', DataType.INT64, [2]),
    };
    const scales = { image: g.input('s_img', DataType.FLOAT, [2]), text: g.input('s_txt', DataType.FLOAT, [2]) };
    g.op('Identity', [mixGuidance(g, logits, rows, scales)], {}, { output: 'mixed' });
    g.output('mixed', DataType.FLOAT, [2, 3]);
    const session = await createSession(g.build());
    const L = [1, 2, 3, 0.5, -1, 4, -2, 0, 1.5, 7, 8, 9];
    const out = await session.run({
      logits: new ort.Tensor('float32', Float32Array.from(L), [4, 3]),
      full: new ort.Tensor('int64', BigInt64Array.from([0n, 3n]), [2]),
      image_cond: new ort.Tensor('int64', BigInt64Array.from([1n, 3n]), [2]),
      uncond: new ort.Tensor('int64', BigInt64Array.from([2n, 3n]), [2]),
      s_img: new ort.Tensor('float32', Float32Array.from([1.2, 1.2]), [2]),
      s_txt: new ort.Tensor('float32', Float32Array.from([3, 3]), [2]),
    });
    const f = Math.fround;
    const mixed = [0, 1, 2].map((j) => f(f(L[6 + j] + f(f(1.2) * f(L[3 + j] - L[6 + j]))) + f(3 * f(L[j] - L[3 + j]))));
    expect(Array.from(out.mixed.data as Float32Array)).toEqual([...mixed, 7, 8, 9]);
  });
});
