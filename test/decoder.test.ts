import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { positionsFromMask, TextModel, type ForwardOutput } from '../sidecar/engine/text-model.ts';
import { spliceImageTokens } from '../sidecar/engine/splice-image-tokens.ts';
import { buildDecoderGraph, decoderWeights, type DecoderWeights } from '../sidecar/graphs/decoder.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { CheckpointError } from '../model/checkpoint-error.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';
import { referenceDecoder, referenceLogits } from './reference/decoder-reference.ts';
import { removeRandomDecoders, VOCAB, writeRandomDecoder, type RandomDecoder } from './reference/random-decoder.ts';

const FIXTURE = 'test/fixtures/anole-tiny';
const ATOL = 1e-4;
const notes = JSON.parse(fs.readFileSync(`${FIXTURE}/goldens.json`, 'utf8'));
const goldenTensors = readSafetensorsHeader(`${FIXTURE}/goldens.safetensors`).tensors;
const golden = (name: string) => readTensorAsFloat32(goldenTensors.get(name)!);

/** max |a[aRow·V + v] − b[bRow·V + v]| over the given row pairs (rows of V logits). */
function maxRowDiff(a: ArrayLike<number>, b: ArrayLike<number>, pairs: [number, number][], V: number): number {
  let max = 0;
  for (const [ra, rb] of pairs) for (let v = 0; v < V; v++) max = Math.max(max, Math.abs(a[ra * V + v] - b[rb * V + v]));
  return max;
}

function argmaxRow(logits: ArrayLike<number>, row: number, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[row * V + v] > logits[row * V + best]) best = v;
  return best;
}

const arange = (ids: number[][]) => ids.map((row) => row.map((_, i) => i));
const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);

/** Feeds of a stand-alone decoder graph for a prefill (empty past). */
function prefillFeeds(w: DecoderWeights, ids: number[][], mask: number[][]): Record<string, ort.Tensor> {
  const { numHiddenLayers: L, numKeyValueHeads: KVH, headDim: D } = w.config;
  const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids), attention_mask: int64(mask), position_ids: int64(positionsFromMask(mask, ids[0].length)) };
  for (let i = 0; i < L; i++) for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [ids.length, KVH, 0, D]);
  return feeds;
}
const allFinite = (out: ForwardOutput) => [out.logits, ...out.cache.keys.map((t) => t.data), ...out.cache.values.map((t) => t.data)].every((d) => (d as Float32Array).every(Number.isFinite));

describe('decoder graph vs the HF goldens (anole-tiny)', () => {
  let model: TextModel;
  const V = 65536;
  beforeAll(async () => {
    model = await TextModel.load(openCheckpoint(FIXTURE));
  });
  afterAll(() => model.release());

  it('text.logits: batch of 2, left padding, arange positions (non-pad positions)', async () => {
    const { input_ids: ids, attention_mask: mask, argmax } = notes.text_forward;
    const out = await model.forward({ inputIds: ids, attentionMask: mask, positionIds: arange(ids) });
    expect(out.dims).toEqual([2, 8, V]);
    const real: [number, number][] = [];
    mask.forEach((row: number[], b: number) => row.forEach((m, t) => m && real.push([b * 8 + t, b * 8 + t])));
    const diff = maxRowDiff(out.logits, golden('text.logits'), real, V);
    console.log(`text.logits max abs diff ${diff.toExponential(3)} over ${real.length} positions`);
    expect(diff).toBeLessThanOrEqual(ATOL);
    for (const [row] of real) expect(argmaxRow(out.logits, row, V)).toBe(argmax[Math.floor(row / 8)][row % 8]);
    // pad query rows see no key: their values are unspecified but must not be NaN, nor poison the cache
    expect(allFinite(out)).toBe(true);
  });

  it('text.logits_maskpos_row1: positions default to cumsum(mask) - 1 as generate() does', async () => {
    const { input_ids: ids, attention_mask: mask, position_ids_generate_convention: positions } = notes.text_forward;
    expect(positionsFromMask(mask, 8)).toEqual(positions);
    const out = await model.forward({ inputIds: ids, attentionMask: mask });
    const diff = maxRowDiff(out.logits, golden('text.logits_maskpos_row1'), [3, 4, 5, 6, 7].map((t, i) => [8 + t, i]), V);
    console.log(`text.logits_maskpos_row1 max abs diff ${diff.toExponential(3)}`);
    expect(diff).toBeLessThanOrEqual(ATOL);
  });

  it('kv.step_logits: prefill then 5 cached steps, and one full forward agrees with them', async () => {
    const { prefill_ids: prefill, step_ids: steps, full_ids: full, step_argmax } = notes.kv_cache;
    const expected = golden('kv.step_logits'); // [6, V]
    let out = await model.forward({ inputIds: [prefill] });
    const stepLogits = new Float32Array(6 * V);
    stepLogits.set(out.logits.subarray((prefill.length - 1) * V, prefill.length * V), 0);
    for (const [i, id] of steps.entries()) {
      out = await model.forward({ inputIds: [[id]], cache: out.cache });
      expect(out.dims).toEqual([1, 1, V]);
      expect(out.cache.keys[0].dims).toEqual([1, 4, prefill.length + i + 1, 8]);
      stepLogits.set(out.logits, (i + 1) * V);
    }
    const rows = [0, 1, 2, 3, 4, 5].map((r): [number, number] => [r, r]);
    const stepDiff = maxRowDiff(stepLogits, expected, rows, V);
    expect(rows.map(([r]) => argmaxRow(stepLogits, r, V))).toEqual(step_argmax);

    const whole = await model.forward({ inputIds: [full] });
    const fullRows = rows.map(([r]): [number, number] => [prefill.length - 1 + r, r]);
    const fullDiff = maxRowDiff(whole.logits, expected, fullRows, V);
    const fullVsSteps = maxRowDiff(whole.logits, stepLogits, fullRows, V);
    console.log(`kv.step_logits max abs diff: cached steps ${stepDiff.toExponential(3)}, full forward ${fullDiff.toExponential(3)}, full vs cached ${fullVsSteps.toExponential(3)}`);
    expect(stepDiff).toBeLessThanOrEqual(ATOL);
    expect(fullDiff).toBeLessThanOrEqual(ATOL);
    expect(fullVsSteps).toBeLessThanOrEqual(ATOL);
  });

  it('mm.last_logits: the processor ids with the VQ tokens spliced in', async () => {
    const c = model.config;
    const ids = spliceImageTokens(notes.processor.input_ids, [notes.vq.bpe_ids], c);
    expect(ids).toEqual(notes.multimodal_prefill.input_ids_after_replacement);
    const out = await model.forward({ inputIds: [ids] });
    const diff = maxRowDiff(out.logits, golden('mm.last_logits'), [[ids.length - 1, 0]], V);
    console.log(`mm.last_logits max abs diff ${diff.toExponential(3)}`);
    expect(diff).toBeLessThanOrEqual(ATOL);
  });

  it('a graph with logits for the last position over a row range of lm_head equals those columns of the full logits', async () => {
    const ids = notes.text_forward.input_ids;
    const mask = notes.text_forward.attention_mask;
    const [start, end] = [4, 8196];
    const w = decoderWeights(openCheckpoint(FIXTURE));
    const session = await createSession(buildDecoderGraph(w, { logits: 'last', lmHeadRows: [start, end] }));
    const full = await model.forward({ inputIds: ids, attentionMask: mask });
    const feeds = prefillFeeds(w, ids, mask);
    const out = await session.run(feeds);
    expect(out.logits.dims).toEqual([2, 1, end - start]);
    const sliced = out.logits.data as Float32Array;
    let diff = 0;
    for (let b = 0; b < 2; b++) for (let v = start; v < end; v++) diff = Math.max(diff, Math.abs(sliced[b * (end - start) + v - start] - full.logits[(b * 8 + 7) * V + v]));
    expect(diff).toBeLessThanOrEqual(1e-6);
    await session.release();
  });
});

describe('spliceImageTokens', () => {
  const opts = { imageTokenId: 9, imageSeqLength: 2 };
  it('replaces each run of placeholders by one image, in order', () => {
    expect(spliceImageTokens([0, 8, 9, 9, 7, 8, 9, 9, 7], [[4, 5], [6, 6]], opts)).toEqual([0, 8, 4, 5, 7, 8, 6, 6, 7]);
    expect(spliceImageTokens([0, 9, 9, 9, 9], [[4, 5], [6, 6]], opts)).toEqual([0, 4, 5, 6, 6]);
  });
  it('rejects counts that do not match', () => {
    expect(() => spliceImageTokens([0, 9, 9], [], opts)).toThrow(/more <image> placeholder runs than the 0 image/);
    expect(() => spliceImageTokens([0, 9, 9], [[4, 5], [6, 7]], opts)).toThrow(/2 image\(s\) given but the prompt has placeholders for 1/);
    expect(() => spliceImageTokens([0, 9, 9, 9], [[4, 5]], opts)).toThrow(/run of 3 <image> placeholders at index 1/);
    expect(() => spliceImageTokens([0, 9, 9], [[4]], opts)).toThrow(/image 0 has 1 tokens but image_seq_length is 2/);
  });
});

// ---- configurations the fixture does not cover: random checkpoints vs the plain-TS reference ----

afterAll(removeRandomDecoders);

describe('decoder graph vs the plain-TS reference on random checkpoints', () => {
  // row 1 is left-padded by 2; positions follow the mask as in generate()
  const ids = [
    [0, 17, 45, 3, 88, 23, 61, 9],
    [1, 1, 0, 52, 70, 11, 36, 90],
  ];
  const mask = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 1, 1, 1, 1, 1, 1],
  ];
  const T = 8;
  const PREFILL = 5;
  const realRows = mask.flatMap((row, b) => row.flatMap((m, t) => (m ? [[b * T + t, b * T + t] as [number, number]] : [])));

  const cases: [string, RandomDecoder][] = [
    ['GQA (4 query heads, 2 key/value heads)', { hidden: 32, heads: 4, kvHeads: 2 }],
    ['GQA with a single key/value head, float32 weights', { hidden: 32, heads: 4, kvHeads: 1, dtype: 'F32' }],
    ['swin_norm (norms after attention and MLP)', { hidden: 32, heads: 4, kvHeads: 4, swinNorm: true }],
    ['GAIR fork layout: shared [head_dim] q/k-norm and the runtime permutation, with GQA', { hidden: 48, heads: 4, kvHeads: 2, forkLayout: true }],
    ['rope_theta 500000 and rope_scaling linear ×4', { hidden: 32, heads: 2, kvHeads: 2, ropeTheta: 500000, ropeScaling: { type: 'linear', factor: 4 } }],
    ['attention_bias, mlp_bias and tied embeddings, 3 layers', { hidden: 24, heads: 3, kvHeads: 3, layers: 3, attentionBias: true, mlpBias: true, tie: true, dtype: 'F32' }],
  ];

  it.each(cases)('%s', async (_name, spec) => {
    const ckpt = openCheckpoint(writeRandomDecoder(spec, 7 + spec.hidden + spec.kvHeads));
    const expected = referenceLogits(referenceDecoder(ckpt), ids, mask, positionsFromMask(mask, T));
    const model = await TextModel.load(ckpt, { intraOpNumThreads: 1 });
    try {
      const whole = await model.forward({ inputIds: ids, attentionMask: mask });
      const wholeDiff = maxRowDiff(whole.logits, expected, realRows, VOCAB);
      expect(allFinite(whole)).toBe(true);

      // the same positions through a prefill and single-token cached steps
      const cached = new Float32Array(ids.length * T * VOCAB);
      let out = await model.forward({ inputIds: ids.map((r) => r.slice(0, PREFILL)), attentionMask: mask.map((r) => r.slice(0, PREFILL)) });
      ids.forEach((_, b) => cached.set(out.logits.subarray(b * PREFILL * VOCAB, (b + 1) * PREFILL * VOCAB), b * T * VOCAB));
      for (let t = PREFILL; t < T; t++) {
        out = await model.forward({ inputIds: ids.map((r) => [r[t]]), cache: out.cache });
        ids.forEach((_, b) => cached.set(out.logits.subarray(b * VOCAB, (b + 1) * VOCAB), (b * T + t) * VOCAB));
      }
      const cachedDiff = maxRowDiff(cached, expected, realRows, VOCAB);
      console.log(`${_name}: max abs diff vs reference ${wholeDiff.toExponential(3)} (one forward), ${cachedDiff.toExponential(3)} (prefill + cached steps)`);
      expect(wholeDiff).toBeLessThanOrEqual(ATOL);
      expect(cachedDiff).toBeLessThanOrEqual(ATOL);
    } finally {
      await model.release();
    }
  });

  it('the GAIR fork layout without its permutation would be wrong (the permutation matters)', async () => {
    // Same random weights read as HF-main layout: the per-head affine rows all equal the shared vector,
    // but q/k are not permuted. The logits must then differ from the fork reference by far more than ATOL.
    const forkDir = writeRandomDecoder({ hidden: 32, heads: 4, kvHeads: 4, forkLayout: true }, 99);
    const fork = openCheckpoint(forkDir);
    const expected = referenceLogits(referenceDecoder(fork), ids, mask, positionsFromMask(mask, T));
    const model = await TextModel.load(fork, { intraOpNumThreads: 1 });
    const out = await model.forward({ inputIds: ids, attentionMask: mask });
    await model.release();
    expect(maxRowDiff(out.logits, expected, realRows, VOCAB)).toBeLessThanOrEqual(ATOL);
    const w = decoderWeights(fork);
    expect(w.qkNormLayout).toBe('shared');
    const unpermuted = { ...w, qkNormLayout: 'per-head' as const }; // [D] affine broadcasts like a repeated [H, D]
    const session = await createSession(buildDecoderGraph(unpermuted));
    const feeds = prefillFeeds(w, ids, mask);
    const wrong = (await session.run(feeds)).logits.data as Float32Array;
    await session.release();
    expect(maxRowDiff(wrong, expected, realRows, VOCAB)).toBeGreaterThan(0.01);
  });
});

describe('checkpoint problems surface before ONNX Runtime', () => {
  it('a missing tensor is a CheckpointError naming it and the file', async () => {
    const dir = writeRandomDecoder({ hidden: 16, heads: 2, kvHeads: 2, drop: 'model.layers.1.mlp.up_proj.weight' }, 1);
    expect(() => decoderWeights(openCheckpoint(dir))).toThrow(CheckpointError);
    await expect(TextModel.load(openCheckpoint(dir))).rejects.toThrow(/model\.safetensors: missing tensor model\.layers\.1\.mlp\.up_proj\.weight/);
  });

  it('a tensor whose shape disagrees with the config is a CheckpointError', () => {
    const dir = writeRandomDecoder({ hidden: 16, heads: 2, kvHeads: 2, reshape: { name: 'model.layers.0.self_attn.k_proj.weight', shape: [8, 16] } }, 2);
    expect(() => decoderWeights(openCheckpoint(dir))).toThrow(/k_proj\.weight has shape \[8,16\] but the config implies \[16,16\]/);
  });

  it('a missing lm_head is an error unless tie_word_embeddings', () => {
    expect(() => decoderWeights(openCheckpoint(writeRandomDecoder({ hidden: 16, heads: 2, kvHeads: 2, drop: 'lm_head.weight' }, 3)))).toThrow(/missing tensor lm_head\.weight/);
    const tied = decoderWeights(openCheckpoint(writeRandomDecoder({ hidden: 16, heads: 2, kvHeads: 2, tie: true }, 3)));
    expect(tied.lmHead.name).toBe('model.embed_tokens.weight');
  });

  it('rope_scaling dynamic is the unscaled rotary within the context, and positions beyond it are refused', async () => {
    const spec: RandomDecoder = { hidden: 16, heads: 2, kvHeads: 2 };
    const plain = await TextModel.load(openCheckpoint(writeRandomDecoder(spec, 4)), { intraOpNumThreads: 1 });
    const dynamicDir = writeRandomDecoder({ ...spec, ropeScaling: { type: 'dynamic', factor: 2 } }, 4);
    const dynamic = await TextModel.load(openCheckpoint(dynamicDir), { intraOpNumThreads: 1 });
    const inputIds = [[0, 7, 8, 9]];
    const positionIds = [[0, 1, 2, 4095]]; // the last one is the context's last position
    const a = await plain.forward({ inputIds, positionIds });
    const b = await dynamic.forward({ inputIds, positionIds });
    expect(Array.from(b.logits)).toEqual(Array.from(a.logits));
    await expect(dynamic.forward({ inputIds: [[0]], positionIds: [[4096]] })).rejects.toThrow(/position 4096 is beyond the context length \(max_position_embeddings 4096\)/);
    await Promise.all([plain.release(), dynamic.release()]);
  });
});
