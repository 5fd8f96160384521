import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer, byteLevelAlphabet } from 'tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAnoleConfig, parseVQConfig } from '../model/config.ts';
import { imageVocabulary } from '../model/vocabulary.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { anoleTensors, vqTensors, type TensorSpec } from '../sidecar/weights/expected-tensors.ts';
import { RANDOM_CHECKPOINT_PRESETS, writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';
import { readSafetensorsHeader, readTensorAsFloat32, type TensorEntry } from '../sidecar/weights/safetensors.ts';
import { validateCheckpoint } from '../sidecar/weights/validate-checkpoint.ts';

const FIXTURE_A = 'test/fixtures/anole-tiny';
const FIXTURE_B = 'test/fixtures/anole-tiny-512';
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const shapeMap = (entries: Iterable<{ name: string; shape: number[] }>) =>
  Object.fromEntries([...entries].map((e) => [e.name, e.shape]));
const rawBytes = (e: TensorEntry) => {
  const fd = fs.openSync(e.file, 'r');
  const buf = Buffer.alloc(e.byteLength);
  fs.readSync(fd, buf, 0, e.byteLength, e.offset);
  fs.closeSync(fd);
  return buf;
};

let tmp: string;
let tiny: string; // tiny preset, seed 7
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'random-ckpt-'));
  tiny = writeRandomCheckpoint({ out: path.join(tmp, 'tiny'), preset: 'tiny', seed: 7 }).dir;
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('expected tensor names', () => {
  it('generates exactly fixture A’s names and shapes from its config', () => {
    const config = parseAnoleConfig(readJson(`${FIXTURE_A}/config.json`));
    const header = readSafetensorsHeader(`${FIXTURE_A}/model.safetensors`);
    expect(shapeMap(anoleTensors(config))).toEqual(shapeMap(header.tensors.values()));
  });

  it('generates exactly fixture B’s names and shapes (standalone VQ-VAE, 1024 tokens)', () => {
    const vq = parseVQConfig(readJson(`${FIXTURE_B}/config.json`));
    const header = readSafetensorsHeader(`${FIXTURE_B}/model.safetensors`);
    expect(shapeMap(vqTensors(vq, ''))).toEqual(shapeMap(header.tensors.values()));
  });
});

describe('tiny preset', () => {
  it('writes fixture A’s weight file layout: same names, shapes, dtypes and data offsets', () => {
    const mine = readSafetensorsHeader(`${tiny}/model.safetensors`);
    const fixture = readSafetensorsHeader(`${FIXTURE_A}/model.safetensors`);
    expect(mine.metadata).toEqual({ format: 'pt' });
    expect(mine.tensors.size).toBe(fixture.tensors.size);
    const dataStart = (h: typeof mine) => Math.min(...[...h.tensors.values()].map((e) => e.offset));
    for (const [name, f] of fixture.tensors) {
      const m = mine.tensors.get(name)!;
      expect({ name, dtype: m.dtype, shape: m.shape }).toEqual({ name, dtype: f.dtype, shape: f.shape });
      expect(m.offset - dataStart(mine)).toBe(f.offset - dataStart(fixture));
    }
    expect([...mine.tensors.values()].filter((e) => e.dtype === 'BF16').every((e) => !e.name.startsWith('model.vqmodel.'))).toBe(true);
  });

  it('writes fixture A’s config.json apart from the invented text vocabulary', () => {
    const mine = readJson(`${tiny}/config.json`);
    const fixture = readJson(`${FIXTURE_A}/config.json`);
    const { vocabulary_map: myVocab, ...myRest } = mine;
    const { vocabulary_map: fixtureVocab, ...fixtureRest } = fixture;
    expect(myRest).toEqual(fixtureRest);
    // Specials, image tokens, reserved and the 256 byte symbols are the fixture's; merges and filler are invented.
    const byId = (vocab: Record<string, number>) => Object.fromEntries(Object.entries(vocab).filter(([, id]) => id < 16388 + 256).map(([n, id]) => [id, n]));
    expect(byId(myVocab)).toEqual(byId(fixtureVocab));
    expect(Object.keys(myVocab)).toHaveLength(65536);
    expect(new Set(Object.values(myVocab)).size).toBe(65536);
    expect(myVocab['<image>']).toBe(8711);
    expect(myVocab['<reserved08707>']).toBeUndefined();
    const { vocabularyMap: _a, ...parsedMine } = parseAnoleConfig(mine);
    const { vocabularyMap: _b, ...parsedFixture } = parseAnoleConfig(fixture);
    expect(parsedMine).toEqual(parsedFixture);
  });

  it('writes the processor, generation and special-token files the fixture has', () => {
    for (const file of ['preprocessor_config.json', 'processor_config.json', 'generation_config.json', 'special_tokens_map.json', 'tokenizer_config.json']) {
      expect([file, readJson(`${tiny}/${file}`)]).toEqual([file, readJson(`${FIXTURE_A}/${file}`)]);
    }
    const mine = readJson(`${tiny}/tokenizer.json`);
    const fixture = readJson(`${FIXTURE_A}/tokenizer.json`);
    const { model: myModel, ...myRest } = mine;
    const { model: fixtureModel, ...fixtureRest } = fixture;
    expect(myRest).toEqual(fixtureRest);
    const strip = ({ vocab: _v, merges: _m, ...rest }: Record<string, unknown>) => rest;
    expect(strip(myModel)).toEqual(strip(fixtureModel));
    expect(fs.readdirSync(tiny).sort()).toEqual([
      'config.json', 'generation_config.json', 'model.safetensors', 'preprocessor_config.json', 'processor_config.json',
      'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json',
    ]);
  });

  it('passes checkpoint validation', () => {
    expect(() => validateCheckpoint(openCheckpoint(tiny))).not.toThrow();
  });

  it('initialises like the fixture harness', () => {
    const ckpt = openCheckpoint(tiny);
    const specs = anoleTensors(ckpt.config!);
    // Pools every tensor of one init kind, normalised so each pool should be N(mean, std²).
    const pool = (init: TensorSpec['init'], part: TensorSpec['part']) => {
      let n = 0, sum = 0, sumSq = 0;
      for (const s of specs.filter((x) => x.init === init && x.part === part)) {
        const scale = init === 'matrix' ? Math.sqrt(s.shape.slice(1).reduce((a, b) => a * b, 1)) : 1;
        for (const v of readTensorAsFloat32(ckpt.tensor(s.name))) {
          n++;
          sum += v * scale;
          sumSq += (v * scale) ** 2;
        }
      }
      const mean = sum / n;
      return { n, mean, std: Math.sqrt(sumSq / n - mean * mean) };
    };
    const close = (got: { n: number; mean: number; std: number }, mean: number, std: number) => {
      // 5 standard errors of the mean, and of the standard deviation (≈ std/sqrt(2n)).
      expect(Math.abs(got.mean - mean)).toBeLessThan((5 * std) / Math.sqrt(got.n));
      expect(Math.abs(got.std - std)).toBeLessThan((5 * std) / Math.sqrt(2 * got.n) + 0.004 * std); // + bf16 rounding
    };
    close(pool('table', 'text'), 0, 1);
    close(pool('table', 'vq'), 0, 1);
    close(pool('matrix', 'text'), 0, 1);
    close(pool('matrix', 'vq'), 0, 1);
    close(pool('bias', 'text'), 0, 0.1);
    close(pool('bias', 'vq'), 0, 0.1);
    close(pool('gain', 'text'), 1, 0.1);
    close(pool('gain', 'vq'), 1, 0.1);
  });
});

describe('synthetic tokenizer', () => {
  it('loads in HF tokenizers with the Anole special ids, a BOS, and lossless text', async () => {
    const tok = Tokenizer.fromFile(`${tiny}/tokenizer.json`);
    expect(tok.tokenToId('<image>')).toBe(8711);
    expect(tok.tokenToId('<racm3:break>')).toBe(8197);
    expect(tok.tokenToId('<reserved08706>')).toBe(8710);
    expect(tok.tokenToId('<eoss>')).toBe(8196);
    expect(tok.tokenToId('IMGIMGFDZ')).toBe(53 + 4);
    expect(tok.getVocabSize(true)).toBe(65536);

    const prompt = await tok.encode('What do you see?<racm3:break><image><image><eoss><reserved08706>');
    const ids = prompt.getIds();
    expect(ids[0]).toBe(0);
    expect(ids.slice(-5)).toEqual([8197, 8711, 8711, 8196, 8710]);

    for (const text of ['Generate an image of the sea and the sun.', '  two spaces, tabs\tand\nnewlines', 'café ☕ 日本語 🦎', '<not a special token>']) {
      const enc = await tok.encode(text);
      expect(enc.getIds()[0]).toBe(0);
      expect(enc.getIds().slice(1).every((id) => id >= 16388)).toBe(true);
      expect(await tok.decode(enc.getIds(), true)).toBe(text);
    }
    // The merges are used: " the" is one token.
    expect((await tok.encode(' the')).getTokens()).toEqual(['<s>', 'Ġthe']);
  });

  it('has the byte-level alphabet at 16388..16643 and image tokens that map to codes id − 4', () => {
    const vocab: Record<string, number> = readJson(`${tiny}/tokenizer.json`).model.vocab;
    const bytes = Object.entries(vocab).filter(([, id]) => id >= 16388 && id < 16388 + 256).map(([n]) => n);
    expect(new Set(bytes)).toEqual(new Set(byteLevelAlphabet()));
    const images = imageVocabulary(openCheckpoint(tiny).config!);
    expect(Array.from(images.codeToToken)).toEqual(Array.from({ length: 8192 }, (_, c) => c + 4));
  });
});

describe('determinism and shards', () => {
  it('writes byte-identical files for the same seed and different weights for another', () => {
    const again = writeRandomCheckpoint({ out: path.join(tmp, 'again'), preset: 'tiny', seed: 7 }).dir;
    const other = writeRandomCheckpoint({ out: path.join(tmp, 'other'), preset: 'tiny', seed: 8 }).dir;
    for (const file of fs.readdirSync(tiny)) {
      expect([file, fs.readFileSync(`${again}/${file}`).equals(fs.readFileSync(`${tiny}/${file}`))]).toEqual([file, true]);
      const same = fs.readFileSync(`${other}/${file}`).equals(fs.readFileSync(`${tiny}/${file}`));
      expect([file, same]).toEqual([file, file !== 'model.safetensors']);
    }
  });

  it('splits into shards with an HF index, holding the same tensor bytes as the single file', () => {
    const sharded = writeRandomCheckpoint({ out: path.join(tmp, 'sharded'), preset: 'tiny', seed: 7, shards: 3 });
    const dir = sharded.dir;
    const shardFiles = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    expect(fs.existsSync(`${dir}/model.safetensors`)).toBe(false);
    const index = readJson(`${dir}/model.safetensors.index.json`);
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shardFiles));

    const single = openCheckpoint(tiny);
    const split = openCheckpoint(dir);
    expect(() => validateCheckpoint(split)).not.toThrow();
    expect(Object.keys(index.weight_map).sort()).toEqual([...single.tensors.keys()].sort());
    let total = 0;
    for (const [name, entry] of split.tensors) {
      expect(path.basename(entry.file)).toBe(index.weight_map[name]);
      expect(rawBytes(entry).equals(rawBytes(single.tensors.get(name)!))).toBe(true);
      total += entry.byteLength;
    }
    expect(index.metadata.total_size).toBe(total);
    expect(sharded.bytes).toBe(total);
  });

  it('refuses to write into a non-empty directory', () => {
    expect(() => writeRandomCheckpoint({ out: tiny, preset: 'tiny', seed: 7 })).toThrow(/not empty/);
  });
});

describe('small preset', () => {
  it('writes a valid checkpoint with the real VQ geometry', () => {
    const { dir, tensors } = writeRandomCheckpoint({ out: path.join(tmp, 'small'), preset: 'small', seed: 1 });
    const ckpt = openCheckpoint(dir);
    expect(() => validateCheckpoint(ckpt)).not.toThrow();
    const config = ckpt.config!;
    const preset = RANDOM_CHECKPOINT_PRESETS.small;
    expect([config.hiddenSize, config.numHiddenLayers, config.numAttentionHeads, config.intermediateSize, config.vocabSize])
      .toEqual([preset.hiddenSize, preset.numHiddenLayers, preset.numAttentionHeads, preset.intermediateSize, preset.vocabSize]);
    expect(config.vq.quantStateDims).toEqual([32, 32]);
    expect(config.imageSeqLength).toBe(1024);
    expect(readJson(`${dir}/processor_config.json`).image_seq_length).toBe(1024);
    expect(readJson(`${dir}/preprocessor_config.json`).size).toEqual({ shortest_edge: 512 });
    // The real VQ-VAE's parameter count (docs/model.md §2.10).
    const vqParams = [...ckpt.tensors.values()].filter((e) => e.name.startsWith('model.vqmodel.')).reduce((a, e) => a + e.byteLength / 4, 0);
    expect(vqParams).toBe(68_718_467);
    expect(ckpt.tensors.size).toBe(tensors);
  });
});
