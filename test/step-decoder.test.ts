import fs from 'node:fs';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { spliceImageTokens } from '../sidecar/engine/splice-image-tokens.ts';
import { decoderWeights, type DecoderWeights } from '../sidecar/graphs/decoder.ts';
import { buildStepGraph, cacheHeadDim } from '../sidecar/graphs/step-decoder.ts';
import { missingCudaKernel } from '../sidecar/onnx/cuda-kernels.ts';
import { DataType, DEFAULT_OPSETS } from '../sidecar/onnx/graph-builder.ts';
import { typedNodes } from '../sidecar/onnx/node-types.ts';
import { runNodeCount } from '../sidecar/onnx/run-nodes.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';
import { referenceDecoder, referenceLogits } from './reference/decoder-reference.ts';
import { removeRandomDecoders, VOCAB, writeRandomDecoder, type RandomDecoder } from './reference/random-decoder.ts';

/**
 * The engine-v2 step graph (GroupQueryAttention over a cache updated in place, fused norms, packed
 * matrices) against the HF goldens of fixture A and the plain-TS reference on random checkpoints.
 * Here the cache is shared through onnxruntime-node (each present fetched into the very tensor
 * fed as its past), which on the CPU hands ONNX Runtime the same memory for both.
 */
const FIXTURE = 'test/fixtures/anole-tiny';
const ATOL = 1e-4;
const notes = JSON.parse(fs.readFileSync(`${FIXTURE}/goldens.json`, 'utf8'));
const goldenTensors = readSafetensorsHeader(`${FIXTURE}/goldens.safetensors`).tensors;
const golden = (name: string) => readTensorAsFloat32(goldenTensors.get(name)!);
afterAll(removeRandomDecoders);

/** The step graph with R cache rows of `capacity` positions, and the lm-head in plain TS. */
async function stepModel(w: DecoderWeights, rows: number, capacity: number) {
  const c = w.config;
  const session = await createSession(buildStepGraph(w), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const Dc = cacheHeadDim(c.headDim);
  const dims = [rows, c.numKeyValueHeads, capacity, Dc];
  const caches = Array.from({ length: 2 * c.numHiddenLayers }, () => new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b)), dims));
  const head = readTensorAsFloat32(c.tieWordEmbeddings ? w.embed : (w.lmHead as Parameters<typeof readTensorAsFloat32>[0]));
  const C = c.hiddenSize;
  const V = c.vocabSize;
  const logits = (hidden: Float32Array, row: number) => Float32Array.from({ length: V }, (_, v) => {
    let sum = 0;
    for (let k = 0; k < C; k++) sum += hidden[row * C + k] * head[v * C + k];
    return sum;
  });
  /** One run: `ids` per row (all of one length), `lengths` each row's length after the run. */
  const run = async (ids: number[][], lengths: number[], cacheRows = caches) => {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.flat(), BigInt), [ids.length, ids[0].length]),
      seqlens_k: new ort.Tensor('int32', Int32Array.from(lengths, (n) => n - 1), [ids.length]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(Math.max(...lengths)), []),
    };
    const fetches: Record<string, ort.Tensor | null> = { hidden: null };
    for (let i = 0; i < c.numHiddenLayers; i++) {
      feeds[`past_key_values.${i}.key`] = fetches[`present.${i}.key`] = cacheRows[2 * i];
      feeds[`past_key_values.${i}.value`] = fetches[`present.${i}.value`] = cacheRows[2 * i + 1];
    }
    const out = await session.run(feeds, fetches as ort.InferenceSession.FetchesType);
    return out.hidden.data as Float32Array; // [R, 1, C]
  };
  /** The logits of every position of one row, from a prefill of `prefill` tokens and single steps after. */
  const everyPosition = async (ids: number[], prefill: number) => {
    const out: Float32Array[] = [];
    for (let t = prefill; t <= ids.length; t++) {
      const hidden = await run([t === prefill ? ids.slice(0, prefill) : [ids[t - 1]]], [t]);
      out.push(logits(hidden, 0));
    }
    return out; // logits after position prefill-1, prefill, …
  };
  return { session, caches, run, logits, everyPosition };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>, offset = 0) => {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[offset + i]));
  return max;
};

describe('step graph vs the HF goldens (anole-tiny: head_dim 8, padded to 16 for the kernel)', () => {
  const w = decoderWeights(openCheckpoint(FIXTURE));
  const V = w.config.vocabSize;

  it('kv.step_logits: a prefill then 5 steps, the cache shared in place', async () => {
    const { prefill_ids: prefill, step_ids: steps, step_argmax } = notes.kv_cache;
    const expected = golden('kv.step_logits'); // [6, V]
    const m = await stepModel(w, 1, 64);
    const got = await m.everyPosition([...prefill, ...steps], prefill.length);
    const diff = Math.max(...got.map((l, r) => maxDiff(l, expected, r * V)));
    console.log(`step graph kv.step_logits max abs diff ${diff.toExponential(3)}`);
    expect(diff).toBeLessThanOrEqual(ATOL);
    expect(got.map((l) => l.indexOf(Math.max(...l)))).toEqual(step_argmax);
    // only the written positions of the cache changed: the rest of the capacity is still zero
    const written = prefill.length + steps.length;
    const Dc = cacheHeadDim(w.config.headDim);
    const key0 = m.caches[0].data as Float32Array;
    for (let h = 0; h < w.config.numKeyValueHeads; h++) {
      const base = h * 64 * Dc;
      expect(key0.subarray(base + (written - 1) * Dc, base + written * Dc).some((x) => x !== 0)).toBe(true);
      expect(key0.subarray(base + written * Dc, base + 64 * Dc).every((x) => x === 0)).toBe(true);
    }
    await m.session.release();
  });

  it('text.logits: each row of the left-padded batch, unpadded, at every position', async () => {
    const { input_ids: ids, attention_mask: mask } = notes.text_forward;
    const expected = golden('text.logits'); // [B, T, V]
    const T = ids[0].length;
    let diff = 0;
    for (let b = 0; b < ids.length; b++) {
      const m = await stepModel(w, 1, 32);
      const real = ids[b].filter((_: number, t: number) => mask[b][t] === 1);
      const pad = T - real.length;
      const got = await m.everyPosition(real, 1);
      got.forEach((l, i) => (diff = Math.max(diff, maxDiff(l, expected, (b * T + pad + i) * V))));
      await m.session.release();
    }
    console.log(`step graph text.logits max abs diff ${diff.toExponential(3)}`);
    expect(diff).toBeLessThanOrEqual(ATOL);
  });

  it('mm.last_logits: the multimodal prompt as one prefill', async () => {
    const ids = spliceImageTokens(notes.processor.input_ids, [notes.vq.bpe_ids], w.config);
    const m = await stepModel(w, 1, ids.length);
    const diff = maxDiff(m.logits(await m.run([ids], [ids.length]), 0), golden('mm.last_logits'));
    console.log(`step graph mm.last_logits max abs diff ${diff.toExponential(3)}`);
    expect(diff).toBeLessThanOrEqual(ATOL);
    await m.session.release();
  });

  it('rows of different lengths step together without padding, each as it would alone', async () => {
    const a = [0, 17, 45, 3, 88, 23, 61];
    const b = [0, 52, 70];
    const alone = await stepModel(w, 1, 16);
    const aloneA = (await alone.everyPosition([...a, 9], a.length))[1];
    const alone2 = await stepModel(w, 1, 16);
    const aloneB = (await alone2.everyPosition([...b, 11], b.length))[1];
    // both prompts into their rows of one 2-row cache, then one step of both rows
    const m = await stepModel(w, 2, 16);
    const rowView = (r: number) => m.caches.map((t) => {
      const n = t.data.length / 2;
      return new ort.Tensor('float32', (t.data as Float32Array).subarray(r * n, (r + 1) * n), [1, ...t.dims.slice(1)]);
    });
    await m.run([a], [a.length], rowView(0));
    await m.run([b], [b.length], rowView(1));
    const hidden = await m.run([[9], [11]], [a.length + 1, b.length + 1]);
    expect(maxDiff(m.logits(hidden, 0), aloneA)).toBeLessThanOrEqual(1e-5);
    expect(maxDiff(m.logits(hidden, 1), aloneB)).toBeLessThanOrEqual(1e-5);
    for (const s of [alone, alone2, m]) await s.session.release();
  });
});

describe('step graph vs the plain-TS reference (head_dim 16 and 32: rotary inside GroupQueryAttention)', () => {
  const ids = [0, 17, 45, 3, 88, 23, 61, 9];
  const cases: [string, RandomDecoder][] = [
    ['GQA (4 query heads, 2 key/value heads)', { hidden: 64, heads: 4, kvHeads: 2 }],
    ['swin_norm', { hidden: 64, heads: 4, kvHeads: 4, swinNorm: true }],
    ['GAIR fork layout (shared q/k-norm and its permutation)', { hidden: 64, heads: 2, kvHeads: 2, forkLayout: true }],
    ['rope_scaling linear ×4, rope_theta 500000', { hidden: 64, heads: 4, kvHeads: 4, ropeTheta: 500000, ropeScaling: { type: 'linear', factor: 4 } }],
    ['attention_bias, mlp_bias, tied embeddings, float32, 3 layers', { hidden: 64, heads: 2, kvHeads: 1, layers: 3, attentionBias: true, mlpBias: true, tie: true, dtype: 'F32' }],
  ];
  it.each(cases)('%s', async (_name, spec) => {
    const ckpt = openCheckpoint(writeRandomDecoder(spec, 11 + spec.hidden + spec.kvHeads));
    const expected = referenceLogits(referenceDecoder(ckpt), [ids], [ids.map(() => 1)], [ids.map((_, t) => t)]); // [T, V]
    const m = await stepModel(decoderWeights(ckpt), 1, 12);
    const got = await m.everyPosition(ids, 5);
    const diff = Math.max(...got.map((l, i) => maxDiff(l, expected, (4 + i) * VOCAB)));
    console.log(`${_name}: step graph max abs diff vs reference ${diff.toExponential(3)}`);
    expect(diff).toBeLessThanOrEqual(ATOL);
    await m.session.release();
  });
});

const nodeCount = runNodeCount;

describe('step graph structure', () => {
  const shaped = (layers: number) => decoderWeights(openCheckpoint(writeRandomDecoder({ hidden: 128, heads: 2, kvHeads: 2, layers }, 5)));

  it('a decoder layer runs at most 24 nodes (the primitive-op decoder graph about 55); per-head q/k affine tables included', () => {
    const perLayer = nodeCount(buildStepGraph(shaped(3))) - nodeCount(buildStepGraph(shaped(2)));
    console.log(`step graph: ${perLayer} nodes per decoder layer`);
    expect(perLayer).toBeLessThanOrEqual(24);
  });

  for (const floatType of [DataType.FLOAT16, DataType.BFLOAT16]) {
    it(`every node of the ${floatType === DataType.FLOAT16 ? 'fp16' : 'bf16'} step graph has a CUDA kernel`, () => {
      const missing = typedNodes(buildStepGraph(shaped(2), { floatType })).map((n) => missingCudaKernel(n, DEFAULT_OPSETS)).filter((m) => m !== undefined);
      expect(missing).toEqual([]);
    });
  }
});
