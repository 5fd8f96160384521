import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint, type Checkpoint } from '../sidecar/weights/checkpoint.ts';
import { CheckpointError } from '../model/checkpoint-error.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';
import { writeSafetensors, type TensorToWrite } from '../sidecar/weights/safetensors-writer.ts';
import { parseVQConfig } from '../model/config.ts';
import { vqTensors } from '../sidecar/weights/expected-tensors.ts';
import { referenceDecode, referenceEncode, referenceQuantize, type Weights } from './reference/vqvae-reference.ts';

const FIXTURE_A = 'test/fixtures/anole-tiny';
const FIXTURE_B = 'test/fixtures/anole-tiny-512';
const ATOL = 1e-4;

function goldens(dir: string) {
  const tensors = readSafetensorsHeader(path.join(dir, 'goldens.safetensors')).tensors;
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'goldens.json'), 'utf8'));
  return { json, tensor: (name: string) => readTensorAsFloat32(tensors.get(name)!) };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function vqWeights(ckpt: Checkpoint): Weights {
  const cache = new Map<string, Float32Array>();
  return (name) => {
    if (!cache.has(name)) cache.set(name, readTensorAsFloat32(ckpt.tensor(ckpt.vqPrefix + name)));
    return cache.get(name)!;
  };
}

describe('VQ-VAE on fixture A (full checkpoint, model.vqmodel. prefix)', () => {
  const gold = goldens(FIXTURE_A);
  let codec: ImageCodec;
  beforeAll(async () => {
    codec = await ImageCodec.load(openCheckpoint(FIXTURE_A), { intraOpNumThreads: 2 });
  });
  afterAll(() => codec.release());

  it('encodes the processor pixels to the golden latent, indices and image token ids', async () => {
    const { codes, latent } = await codec.encode(gold.tensor('processor.pixel_values'), 1);
    const diff = maxAbsDiff(latent, gold.tensor('vq.latent_pre_quant'));
    console.log(`fixture A latent_pre_quant max abs diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(ATOL);
    expect(Array.from(codes[0])).toEqual(gold.json.vq.indices);
    expect(Array.from(codec.codesToTokens(codes[0]))).toEqual(gold.json.vq.bpe_ids);
  });

  it('decodes golden codes and image token ids to the golden pixels', async () => {
    const cases = [
      { what: 'vq.indices', pixels: await codec.decodeTokens([gold.json.vq.bpe_ids]), golden: 'vq.decoded_pixel_values' },
      { what: 'fixed codes', pixels: await codec.decode([gold.json.vq.decode_fixed_codes]), golden: 'vq.decode_fixed_codes.pixel_values' },
      // The image-only generation's output between boi and eoi, fed as the model emitted it.
      { what: 'generated image', pixels: await codec.decodeTokens([gold.json.generation.image_only.new_ids.slice(1, -1)]), golden: 'gen.image_only.decoded_pixel_values' },
    ];
    for (const c of cases) {
      const diff = maxAbsDiff(c.pixels, gold.tensor(c.golden));
      console.log(`fixture A decode ${c.what}: max abs diff ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(ATOL);
    }
  });

  it('decodes a batch row by row as it decodes each image alone', async () => {
    const rows = [gold.json.vq.indices, gold.json.generation.image_only.image_codes];
    const batch = await codec.decode(rows);
    const alone = await codec.decode([rows[1]]);
    expect(maxAbsDiff(batch.subarray(alone.length), alone)).toBeLessThan(1e-6);
    expect(maxAbsDiff(batch.subarray(0, alone.length), gold.tensor('vq.decoded_pixel_values'))).toBeLessThan(ATOL);
  });

  it('rejects non-image token ids and out-of-range codes instead of mapping them to code 0', async () => {
    const ids = gold.json.vq.bpe_ids.slice();
    ids[5] = 8197; // boi
    await expect(codec.decodeTokens([ids])).rejects.toThrow(/token 8197 at position 5 is not an image token/);
    await expect(codec.decodeTokens([gold.json.vq.bpe_ids.slice(0, 15)])).rejects.toThrow(/image 0 has 15 codes, expected 16/);
    const codes = gold.json.vq.indices.slice();
    codes[0] = 8192;
    await expect(codec.decode([codes])).rejects.toThrow(/8192 is not a code/);
    await expect(codec.decode([gold.json.vq.indices.slice(1)])).rejects.toThrow(/has 15 codes, expected 16/);
  });
});

describe('VQ-VAE on fixture B (standalone AnoleVQVAE, 512×512 → 1024 codes)', () => {
  const gold = goldens(FIXTURE_B);
  let codec: ImageCodec;
  beforeAll(async () => {
    codec = await ImageCodec.load(openCheckpoint(FIXTURE_B), { intraOpNumThreads: 2 });
  });
  afterAll(() => codec.release());

  it('encodes to the golden latent; any index flip sits where the golden margin is tiny', async () => {
    const { codes, latent } = await codec.encode(gold.tensor('processor.pixel_values'), 1);
    const diff = maxAbsDiff(latent, gold.tensor('vq.latent_pre_quant'));
    const indices: number[] = gold.json.vq.indices;
    const margins: number[] = gold.json.vq.nn_margin;
    expect(codes[0].length).toBe(1024);
    const flips = indices.flatMap((code, t) => (codes[0][t] === code ? [] : [t]));
    console.log(`fixture B latent_pre_quant max abs diff ${diff.toExponential(2)}; ${flips.length} index flips of 1024`);
    expect(diff).toBeLessThan(ATOL);
    for (const t of flips) expect(margins[t]).toBeLessThan(1e-3);
  });

  it('decodes the golden indices to the golden pixels', async () => {
    const diff = maxAbsDiff(await codec.decode([gold.json.vq.indices]), gold.tensor('vq.decoded_pixel_values'));
    console.log(`fixture B decode max abs diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(ATOL);
  });

  it('has no token vocabulary (standalone checkpoint)', async () => {
    await expect(codec.decodeTokens([gold.json.vq.bpe_ids_with_tokenizer_layout])).rejects.toThrow(/standalone VQ-VAE checkpoint/);
  });
});

/**
 * A random standalone AnoleVQVAE checkpoint (seeded), initialised like the fixtures and stored as
 * BF16 so the graphs' Cast path runs too. `edit` may change the tensor list before it is written.
 */
function writeRandomVQ(dir: string, rawConfig: Record<string, unknown>, edit: (t: TensorToWrite[]) => void = () => {}) {
  const rng = xoroshiro128plus(20240611);
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniformFloat64(rng))) * Math.cos(2 * Math.PI * uniformFloat64(rng));
  const vq = parseVQConfig(rawConfig);
  const tensors: TensorToWrite[] = vqTensors(vq, '').map(({ name, shape, init }) => {
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const draw = { matrix: () => normal() / Math.sqrt(fanIn), bias: () => 0.1 * normal(), gain: () => 1 + 0.1 * normal(), table: normal }[init];
    return { name, dtype: 'BF16', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, draw) };
  });
  edit(tensors);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['AnoleVQVAE'], ...rawConfig }));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  const pixelRng = xoroshiro128plus(7);
  return { vq, pixels: (count: number) => Float32Array.from({ length: count }, () => 2 * uniformFloat64(pixelRng) - 1) };
}

/**
 * HF's constructor makes quant_conv latent_channels → embed_dim even with double_latent, whose
 * conv_out emits 2·latent_channels, so HF cannot run such a model; the graph (and vqTensors) read
 * quant_conv as taking what conv_out emits. This writes HF's inconsistent constructor shape instead.
 */
function hfConstructorQuantConv(tensors: TensorToWrite[]) {
  const q = tensors.find((t) => t.name === 'quant_conv.weight')!;
  const [embed, doubled] = q.shape;
  q.shape = [embed, doubled / 2, 1, 1];
  q.data = Float32Array.from({ length: (embed * doubled) / 2 }, (_, i) => Math.sin(i + 1) / Math.sqrt(doubled / 2));
}

describe('VQ-VAE with per-level attention and double_latent (random checkpoint vs the TypeScript reference)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vqvae-test-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  // Three levels at 16/8/4: attention only at 16 (level 0), so swapping the decoder's level order
  // would look for up.2.attn.* (64 channels) and fail; nin_shortcut in both directions.
  const config = {
    resolution: 16, base_channels: 32, channel_multiplier: [1, 2, 2], num_res_blocks: 2, attn_resolutions: [16],
    double_latent: true, latent_channels: 4, embed_dim: 4, num_embeddings: 64,
  };

  it('matches the reference latent, codes and decode on a batch of two', async () => {
    const dir = path.join(tmp, 'ok');
    const { vq, pixels } = writeRandomVQ(dir, config);
    const ckpt = openCheckpoint(dir);
    expect(ckpt.tensors.has('encoder.down.0.attn.1.proj_out.weight')).toBe(true);
    expect(ckpt.tensors.has('decoder.up.0.attn.2.q.weight')).toBe(true);
    const codec = await ImageCodec.load(ckpt, { intraOpNumThreads: 2 });
    const size = 3 * 16 * 16;
    const input = pixels(2 * size);
    const { codes, latent } = await codec.encode(input, 2);
    const weights = vqWeights(ckpt);
    const perLatent = vq.embedDim * 4 * 4;
    let latentDiff = 0;
    let decodeDiff = 0;
    let flips = 0;
    const referenceCodes: number[][] = [];
    for (let b = 0; b < 2; b++) {
      const ref = referenceEncode(vq, weights, input.subarray(b * size, (b + 1) * size));
      latentDiff = Math.max(latentDiff, maxAbsDiff(latent.subarray(b * perLatent, (b + 1) * perLatent), ref.data));
      const { codes: refCodes, margins } = referenceQuantize(vq, weights, ref);
      refCodes.forEach((code, t) => {
        if (codes[b][t] !== code) {
          flips++;
          expect(margins[t]).toBeLessThan(1e-3);
        }
      });
      expect(new Set(refCodes).size).toBeGreaterThan(1); // the codes say something
      referenceCodes.push(refCodes);
    }
    const decoded = await codec.decode(referenceCodes);
    for (let b = 0; b < 2; b++) {
      const ref = referenceDecode(vq, weights, referenceCodes[b]);
      decodeDiff = Math.max(decodeDiff, maxAbsDiff(decoded.subarray(b * size, (b + 1) * size), ref.data));
    }
    console.log(`random VQ (attn at 16, double_latent): latent max abs diff ${latentDiff.toExponential(2)}, decode ${decodeDiff.toExponential(2)}, ${flips} flips`);
    expect(latentDiff).toBeLessThan(ATOL);
    expect(decodeDiff).toBeLessThan(ATOL);
    await codec.release();
  });

  it('reports a missing or wrong-shaped VQ tensor as a CheckpointError naming it', async () => {
    const missing = path.join(tmp, 'missing');
    writeRandomVQ(missing, config, (t) => {
      t.splice(t.findIndex((x) => x.name === 'decoder.up.0.attn.2.proj_out.bias'), 1);
    });
    await expect(ImageCodec.load(openCheckpoint(missing))).rejects.toThrow(CheckpointError);
    await expect(ImageCodec.load(openCheckpoint(missing))).rejects.toThrow(/missing tensor decoder\.up\.0\.attn\.2\.proj_out\.bias/);

    const misshapen = path.join(tmp, 'misshapen');
    writeRandomVQ(misshapen, config, hfConstructorQuantConv); // quant_conv takes latent_channels, not the doubled conv_out
    await expect(ImageCodec.load(openCheckpoint(misshapen))).rejects.toThrow(/tensor quant_conv\.weight has shape \[4,4,1,1\] but the config implies \[4,8,1,1\]/);
  });
});
