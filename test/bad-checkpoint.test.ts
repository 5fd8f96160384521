import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { CheckpointError } from '../model/checkpoint-error.ts';
import { RANDOM_CHECKPOINT_PRESETS, writeRandomCheckpoint, type CheckpointShape } from '../sidecar/weights/random-checkpoint.ts';
import { validateCheckpoint } from '../sidecar/weights/validate-checkpoint.ts';

/** What a graph builder does before building anything. */
const load = (dir: string) => validateCheckpoint(openCheckpoint(dir));

/**
 * The tiny preset's text decoder with the smallest vocabulary the Chameleon id layout allows and a
 * two-level VQ-VAE, so that the ~30 broken copies below are cheap to make and to read.
 */
const MINI: CheckpointShape = {
  ...RANDOM_CHECKPOINT_PRESETS.tiny,
  vocabSize: 16668,
  vq: { resolution: 32, baseChannels: 32, channelMultiplier: [1, 2], numResBlocks: 1, latentChannels: 16, embedDim: 8, numEmbeddings: 8192 },
};

let tmp: string;
let good: string; // one model.safetensors
let goodSharded: string; // 2 shards
let counter = 0;

beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bad-ckpt-')));
  good = writeRandomCheckpoint({ out: path.join(tmp, 'good'), preset: MINI, seed: 3 }).dir;
  goodSharded = writeRandomCheckpoint({ out: path.join(tmp, 'good-sharded'), preset: MINI, seed: 3, shards: 2 }).dir;
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of a good checkpoint with one thing broken. */
function broken(from: string, breakIt: (dir: string) => void): string {
  const dir = path.join(tmp, `case-${counter++}`);
  fs.cpSync(from, dir, { recursive: true });
  breakIt(dir);
  return dir;
}

/** Exactly one CheckpointError, naming `file` and matching `problem`. */
function expectRejected(dir: string, file: string, problem: RegExp): void {
  let error: unknown;
  try {
    load(dir);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(CheckpointError);
  expect((error as CheckpointError).file).toBe(path.join(dir, file));
  expect((error as Error).message).toContain(file);
  expect((error as Error).message).toMatch(problem);
}

// --- raw safetensors surgery (any dtype string, any byte count) ---

interface RawTensor { name: string; dtype: string; shape: number[]; bytes: Buffer }

function readRaw(file: string): RawTensor[] {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  return Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, info]) => {
      const { dtype, shape, data_offsets: [begin, end] } = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
      return { name, dtype, shape, bytes: buf.subarray(8 + n + begin, 8 + n + end) };
    });
}

function writeRaw(file: string, tensors: RawTensor[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, ...tensors.map((t) => t.bytes)]));
}

function editTensors(file: string, edit: (tensors: RawTensor[]) => RawTensor[]): void {
  writeRaw(file, edit(readRaw(file)));
}

function replaceTensor(name: string, replacement: Omit<RawTensor, 'name'>) {
  return (tensors: RawTensor[]) => tensors.map((t) => (t.name === name ? { name, ...replacement } : t));
}

function editConfig(dir: string, edit: (config: Record<string, any>) => void): void {
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(config);
  fs.writeFileSync(file, JSON.stringify(config));
}

const MODEL = 'model.safetensors';

describe('valid checkpoints pass validation', () => {
  it('accepts fixture A, fixture B (standalone VQ-VAE) and a small random checkpoint, single and sharded', () => {
    for (const dir of ['test/fixtures/anole-tiny', 'test/fixtures/anole-tiny-512', good, goodSharded]) {
      expect(() => load(dir)).not.toThrow();
    }
  });
});

describe('bad tensors', () => {
  it('a missing tensor', () => {
    const dir = broken(good, (d) => editTensors(path.join(d, MODEL), (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.down_proj.weight')));
    expectRejected(dir, MODEL, /missing tensor model\.layers\.1\.mlp\.down_proj\.weight \[32,64\]/);
  });

  it('a missing VQ-VAE tensor in a standalone VQ-VAE checkpoint', () => {
    const dir = broken('test/fixtures/anole-tiny-512', (d) => {
      for (const f of fs.readdirSync(d)) if (f.startsWith('golden')) fs.rmSync(path.join(d, f));
      editTensors(path.join(d, MODEL), (ts) => ts.filter((t) => t.name !== 'decoder.conv_out.bias'));
    });
    expectRejected(dir, MODEL, /missing tensor decoder\.conv_out\.bias/);
  });

  it('a wrong shape', () => {
    const dir = broken(good, (d) => editTensors(path.join(d, MODEL), (ts) => {
      const q = ts.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!;
      return replaceTensor(q.name, { dtype: 'BF16', shape: [32, 16], bytes: q.bytes.subarray(0, q.bytes.length / 2) })(ts);
    }));
    expectRejected(dir, MODEL, /tensor model\.layers\.0\.self_attn\.q_proj\.weight has shape \[32,16\] but the config implies \[32,32\]/);
  });

  it('an integer dtype where a weight is expected', () => {
    const dir = broken(good, (d) => editTensors(path.join(d, MODEL), replaceTensor('model.norm.weight', { dtype: 'I64', shape: [32], bytes: Buffer.alloc(32 * 8) })));
    expectRejected(dir, MODEL, /model\.norm\.weight has dtype I64; weights must be F32, F16 or BF16/);
  });

  it('a dtype this reader does not know (F8_E4M3)', () => {
    const dir = broken(good, (d) => editTensors(path.join(d, MODEL), replaceTensor('model.norm.weight', { dtype: 'F8_E4M3', shape: [32], bytes: Buffer.alloc(32) })));
    expectRejected(dir, MODEL, /tensor model\.norm\.weight has unsupported dtype F8_E4M3/);
  });

  it('accepts q/k norms in the GAIR fork layout ([head_dim]) when every layer uses it', () => {
    const dir = broken(good, (d) => editTensors(path.join(d, MODEL), (ts) => ts.map((t) =>
      /\.[qk]_norm\.(weight|bias)$/.test(t.name) ? { ...t, shape: [t.shape[1]], bytes: t.bytes.subarray(0, t.shape[1] * 2) } : t)));
    expect(() => load(dir)).not.toThrow();
  });

  it('q/k norms that mix the GAIR fork layout ([head_dim]) with the HF layout', () => {
    const dir = broken(good, (d) => editTensors(path.join(d, MODEL), (ts) => {
      const w = ts.find((t) => t.name === 'model.layers.0.self_attn.q_norm.weight')!;
      return replaceTensor(w.name, { dtype: 'BF16', shape: [8], bytes: w.bytes.subarray(0, 16) })(ts);
    }));
    expectRejected(dir, MODEL, /tensor model\.layers\.0\.self_attn\.q_norm\.bias has shape \[4,8\] but the config implies \[8\]/);
  });
});

describe('bad files', () => {
  it('a truncated file', () => {
    const dir = broken(good, (d) => {
      const file = path.join(d, MODEL);
      fs.truncateSync(file, fs.statSync(file).size - 1000);
    });
    expectRejected(dir, MODEL, /truncated: tensor .* ends at byte \d+ but the file has \d+/);
  });

  it('a file truncated inside its header', () => {
    const dir = broken(good, (d) => fs.truncateSync(path.join(d, MODEL), 100));
    expectRejected(dir, MODEL, /truncated: the header needs \d+ bytes but the file has 100/);
  });

  it('a garbage header length', () => {
    const dir = broken(good, (d) => {
      const fd = fs.openSync(path.join(d, MODEL), 'r+');
      fs.writeSync(fd, Buffer.from('GARBAGE!'), 0, 8, 0);
      fs.closeSync(fd);
    });
    expectRejected(dir, MODEL, /corrupt safetensors header length \d+/);
  });

  it('a header that is not valid JSON', () => {
    const dir = broken(good, (d) => {
      const fd = fs.openSync(path.join(d, MODEL), 'r+');
      fs.writeSync(fd, Buffer.from('#not json#'), 0, 10, 8);
      fs.closeSync(fd);
    });
    expectRejected(dir, MODEL, /corrupt safetensors header: .*JSON/);
  });

  it('a header that is JSON but not an object', () => {
    const dir = broken(good, (d) => {
      const json = Buffer.from('[1, 2, 3]');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      fs.writeFileSync(path.join(d, MODEL), Buffer.concat([len, json]));
    });
    expectRejected(dir, MODEL, /corrupt safetensors header: not a JSON object/);
  });

  it('a shard listed in the index that does not exist', () => {
    const shard = 'model-00002-of-00002.safetensors';
    const dir = broken(goodSharded, (d) => fs.rmSync(path.join(d, shard)));
    expectRejected(dir, shard, /missing shard \(listed in model\.safetensors\.index\.json\)/);
  });

  it('a tensor the index lists but its shard lacks', () => {
    const shard = 'model-00002-of-00002.safetensors';
    const dir = broken(goodSharded, (d) => editTensors(path.join(d, shard), (ts) => ts.slice(1)));
    const dropped = readRaw(path.join(goodSharded, shard))[0].name;
    expectRejected(dir, shard, new RegExp(`missing tensor ${dropped.replaceAll('.', '\\.')} \\(listed in model\\.safetensors\\.index\\.json\\)`));
  });

  it('a tensor missing from both a shard and the index: names the index', () => {
    const shard = 'model-00002-of-00002.safetensors';
    const dir = broken(goodSharded, (d) => {
      const dropped = readRaw(path.join(d, shard))[0].name;
      editTensors(path.join(d, shard), (ts) => ts.slice(1));
      const indexFile = path.join(d, 'model.safetensors.index.json');
      const index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
      delete index.weight_map[dropped];
      fs.writeFileSync(indexFile, JSON.stringify(index));
    });
    expectRejected(dir, 'model.safetensors.index.json', /missing tensor /);
  });

  it('an index that is not valid JSON', () => {
    const dir = broken(goodSharded, (d) => fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{"weight_map": '));
    expectRejected(dir, 'model.safetensors.index.json', /not valid JSON/);
  });

  it('no weights at all, and no config at all', () => {
    const noWeights = broken(good, (d) => fs.rmSync(path.join(d, MODEL)));
    expectRejected(noWeights, '', /no model\.safetensors or model\.safetensors\.index\.json/);
    const noConfig = broken(good, (d) => fs.rmSync(path.join(d, 'config.json')));
    expectRejected(noConfig, 'config.json', /missing: a checkpoint directory needs config\.json/);
  });
});

describe('bad configs', () => {
  it('a config.json that is not valid JSON', () => {
    const dir = broken(good, (d) => fs.writeFileSync(path.join(d, 'config.json'), '{"hidden_size": 32,'));
    expectRejected(dir, 'config.json', /not valid JSON/);
  });

  it('inconsistent sizes inside the config', () => {
    const cases: [(c: Record<string, any>) => void, RegExp][] = [
      [(c) => (c.hidden_size = 30), /hidden_size 30 is not divisible by num_attention_heads 4/],
      [(c) => (c.num_key_value_heads = 3), /num_attention_heads 4 is not divisible by num_key_value_heads 3/],
      [(c) => (c.vq_config.resolution = 33), /vq_config\.resolution 33 is not divisible by 2/],
      [(c) => (c.vocab_size = 8000), /outside the vocabulary \(vocab_size 8000\)/],
      [(c) => (c.num_hidden_layers = -1), /num_hidden_layers must be a positive integer/],
    ];
    for (const [edit, problem] of cases) expectRejected(broken(good, (d) => editConfig(d, edit)), 'config.json', problem);
  });

  it('a config whose sizes disagree with the tensors', () => {
    const cases: [(c: Record<string, any>) => void, RegExp][] = [
      [(c) => (c.hidden_size = 64), /model\.embed_tokens\.weight has shape \[16668,32\] but the config implies \[16668,64\]/],
      [(c) => (c.vocab_size = 65536), /model\.embed_tokens\.weight has shape \[16668,32\] but the config implies \[65536,32\]/],
      [(c) => (c.intermediate_size = 128), /model\.layers\.0\.mlp\.gate_proj\.weight has shape \[64,32\] but the config implies \[128,32\]/],
      [(c) => (c.num_key_value_heads = 2), /model\.layers\.0\.self_attn\.k_proj\.weight has shape \[32,32\] but the config implies \[16,32\]/],
      [(c) => (c.num_attention_heads = c.num_key_value_heads = 8), /model\.layers\.0\.self_attn\.q_norm\.weight has shape \[4,8\] but the config implies \[8,4\]/],
      [(c) => (c.vq_config.base_channels = c.vq_config.ch = 64), /model\.vqmodel\.encoder\.conv_in\.weight has shape \[32,3,3,3\] but the config implies \[64,3,3,3\]/],
      [(c) => (c.vq_config.n_embed = 4096), /model\.vqmodel\.quantize\.embedding\.weight has shape \[8192,8\] but the config implies \[4096,8\]/],
      [(c) => (c.num_hidden_layers = 3), /missing tensor model\.layers\.2\./],
    ];
    for (const [edit, problem] of cases) expectRejected(broken(good, (d) => editConfig(d, edit)), MODEL, problem);
  });

  it('a config that implies fewer parameters than the weights hold', () => {
    const dir = broken(good, (d) => editConfig(d, (c) => (c.num_hidden_layers = 1)));
    expectRejected(dir, MODEL, /unexpected tensor model\.layers\.1\..*config\.json implies no such parameter/);
  });

  it('a vocabulary_map without every image token', () => {
    const dir = broken(good, (d) => editConfig(d, (c) => delete c.vocabulary_map.IMGIMGFDZ));
    expectRejected(dir, 'config.json', /no image token for code 53/);
  });
});
