import fs from 'node:fs';
import path from 'node:path';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';
import { parseAnoleConfig, type AnoleConfig, type VQConfig } from '../../model/config.ts';
import { anoleTensors, type TensorSpec } from './expected-tensors.ts';
import { writeSafetensors, type TensorToWrite } from './safetensors-writer.ts';
import { syntheticTokenizer } from './synthetic-tokenizer.ts';

/**
 * `init-model`: a random-weight Anole checkpoint in exactly the layout of leloy/Anole-7b-v0.1-hf
 * (and test/fixtures/anole-tiny): config.json with vq_config and vocabulary_map, the text decoder in
 * bf16 and the VQ-VAE in fp32, tokenizer and processor files. Same seed → byte-identical files.
 */

/** The sizes that define a checkpoint; everything else is the real model's value. */
export type CheckpointShape = Pick<
  AnoleConfig,
  'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'numKeyValueHeads'
> & {
  vq: Pick<VQConfig, 'resolution' | 'baseChannels' | 'channelMultiplier' | 'numResBlocks' | 'latentChannels' | 'embedDim' | 'numEmbeddings'>;
};

export const RANDOM_CHECKPOINT_PRESETS = {
  /** Fixture A's shapes: 64×64 images → 16 image tokens. Written in about a second. */
  tiny: {
    vocabSize: 65536, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 4,
    vq: { resolution: 64, baseChannels: 32, channelMultiplier: [1, 1, 2, 2, 4], numResBlocks: 1, latentChannels: 16, embedDim: 8, numEmbeddings: 8192 },
  },
  /** Realistic proportions for benchmarks, with the real VQ-VAE (512×512 → 1024 tokens, 68.7 M parameters). */
  small: {
    vocabSize: 65536, hiddenSize: 512, intermediateSize: 1408, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 8,
    vq: { resolution: 512, baseChannels: 128, channelMultiplier: [1, 1, 2, 2, 4], numResBlocks: 2, latentChannels: 256, embedDim: 256, numEmbeddings: 8192 },
  },
} satisfies Record<string, CheckpointShape>;

export type PresetName = keyof typeof RANDOM_CHECKPOINT_PRESETS;

export interface RandomCheckpointOptions {
  /** Directory to create; it must not exist or be empty. */
  out: string;
  preset: PresetName | CheckpointShape;
  seed: number;
  /** More than 1 writes model-0000N-of-0000M.safetensors and model.safetensors.index.json. */
  shards?: number;
}

export interface WrittenCheckpoint {
  dir: string;
  tensors: number;
  /** Bytes of tensor data (the index's metadata.total_size). */
  bytes: number;
}

const TRANSFORMERS_VERSION = '4.45.0.dev0';

export function writeRandomCheckpoint(opts: RandomCheckpointOptions): WrittenCheckpoint {
  const shape = typeof opts.preset === 'string' ? RANDOM_CHECKPOINT_PRESETS[opts.preset] : opts.preset;
  if (!shape) throw new Error(`unknown preset ${String(opts.preset)} (known: ${Object.keys(RANDOM_CHECKPOINT_PRESETS).join(', ')})`);
  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shards must be a positive integer, got ${shards}`);
  const out = path.resolve(opts.out);
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) throw new Error(`${out} is not empty; refusing to overwrite it`);

  const tokenizer = syntheticTokenizer({ vocabSize: shape.vocabSize, imageTokens: shape.vq.numEmbeddings });
  const configJson = anoleConfigJson(shape, tokenizer.vocab);
  const config = parseAnoleConfig(configJson); // the same reading every consumer does
  const specs = anoleTensors(config);
  if (shards > specs.length) throw new Error(`cannot split ${specs.length} tensors into ${shards} shards`);

  // Written next to `out` and renamed at the end, so a crash never leaves a directory that looks complete.
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = fs.mkdtempSync(`${out}.partial-`);
  fs.chmodSync(tmp, 0o755); // mkdtemp makes it private; the model directory is not
  try {
    const bytes = writeWeights(tmp, specs, randomValues(specs, opts.seed), shards);
    writeJson(tmp, 'tokenizer.json', tokenizer.tokenizerJson, false);
    writeJson(tmp, 'tokenizer_config.json', tokenizer.tokenizerConfig);
    writeJson(tmp, 'special_tokens_map.json', tokenizer.specialTokensMap);
    writeJson(tmp, 'preprocessor_config.json', preprocessorConfig(shape.vq.resolution));
    writeJson(tmp, 'processor_config.json', { image_seq_length: config.imageSeqLength, image_token: '<image>', processor_class: 'AnoleProcessor' });
    writeJson(tmp, 'generation_config.json', generationConfig(config.bosTokenId, config.eosTokenId, config.padTokenId));
    writeJson(tmp, 'config.json', configJson);
    if (fs.existsSync(out)) fs.rmdirSync(out);
    fs.renameSync(tmp, out);
    return { dir: out, tensors: specs.length, bytes };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * config.json as the 2024 converter + save_pretrained write it: sorted keys, the token ids, the
 * whole vocabulary as vocabulary_map, and vq_config with Meta's yaml names next to the HF names.
 */
export function anoleConfigJson(shape: CheckpointShape, vocab: Record<string, number>): Record<string, unknown> {
  return {
    architectures: ['AnoleForConditionalGeneration'],
    attention_bias: false,
    attention_dropout: 0.0,
    boi_token_id: vocab['<racm3:break>'],
    // <s> is 0 in the vocabulary even though AnoleConfig defaults bos_token_id to 1 (docs/model.md §1.1).
    bos_token_id: vocab['<s>'],
    eoi_token_id: vocab['<eoss>'],
    eos_token_id: vocab['</s>'],
    hidden_act: 'silu',
    hidden_size: shape.hiddenSize,
    image_token_id: vocab['<image>'],
    initializer_range: 0.02,
    intermediate_size: shape.intermediateSize,
    max_position_embeddings: 4096,
    mlp_bias: false,
    model_parallel_size: 1,
    model_type: 'anole',
    num_attention_heads: shape.numAttentionHeads,
    num_hidden_layers: shape.numHiddenLayers,
    num_key_value_heads: shape.numKeyValueHeads,
    pad_token_id: vocab['<pad>'],
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    swin_norm: false,
    tie_word_embeddings: false,
    // save_pretrained records the first parameter's dtype; the VQ-VAE tensors are still F32.
    torch_dtype: 'bfloat16',
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: shape.vocabSize,
    vocabulary_map: vocab,
    vq_config: vqConfigJson(shape.vq),
  };
}

/**
 * HF's diff serialisation keeps only values that differ from AnoleVQVAEConfig's defaults, while
 * the converter's yaml keys (ch, ch_mult, z_channels, n_embed, out_ch, double_z) are always kept.
 */
function vqConfigJson(vq: CheckpointShape['vq']): Record<string, unknown> {
  const hf: Record<string, unknown> = {
    embed_dim: vq.embedDim, num_embeddings: vq.numEmbeddings, double_latent: false, latent_channels: vq.latentChannels,
    resolution: vq.resolution, in_channels: 3, out_channels: 3, base_channels: vq.baseChannels,
    channel_multiplier: vq.channelMultiplier, num_res_blocks: vq.numResBlocks, dropout: 0.0, attn_type: 'vanilla',
  };
  const defaults: Record<string, unknown> = {
    embed_dim: 256, num_embeddings: 8192, double_latent: false, latent_channels: 256, resolution: 512, in_channels: 3,
    out_channels: 3, base_channels: 128, channel_multiplier: [1, 1, 2, 2, 4], num_res_blocks: 2, dropout: 0.0, attn_type: 'vanilla',
  };
  const differing = Object.entries(hf).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(defaults[k]));
  return {
    ...Object.fromEntries(differing),
    attn_resolutions: [], // the class default is None, so [] is always written
    model_type: 'anole_vqgan',
    ch: vq.baseChannels,
    ch_mult: vq.channelMultiplier,
    z_channels: vq.latentChannels,
    n_embed: vq.numEmbeddings,
    out_ch: 3,
    double_z: false,
  };
}

function preprocessorConfig(resolution: number): Record<string, unknown> {
  return {
    crop_size: { height: resolution, width: resolution },
    do_center_crop: true, do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
    image_mean: [1.0, 1.0, 1.0], image_std: [1.0, 1.0, 1.0],
    image_processor_type: 'AnoleImageProcessor', processor_class: 'AnoleProcessor',
    resample: 1, // PIL LANCZOS
    rescale_factor: 0.0078, // HF's rounded 2/255 (docs/model.md §4.2)
    size: { shortest_edge: resolution },
  };
}

/** What the 2024 conversion script writes; every caller overrides the sampling settings. */
function generationConfig(bos: number, eos: number, pad: number): Record<string, unknown> {
  return {
    bos_token_id: bos, do_sample: true, eos_token_id: eos, multimodal_generation_mode: 'text-only',
    pad_token_id: pad, temperature: 0.7, top_p: 0.7, transformers_version: TRANSFORMERS_VERSION,
  };
}

/**
 * One independent stream per tensor: the generator is jumped 2^64 steps between tensors in sorted
 * name order, so a tensor's values depend only on the seed and the set of names — not on the order
 * the writer visits them or on how the tensors are split into shards.
 */
function randomValues(specs: TensorSpec[], seed: number): (spec: TensorSpec) => Float32Array {
  const master = xoroshiro128plus(seed);
  const streams = new Map<string, RandomGenerator>();
  for (const name of specs.map((s) => s.name).sort()) {
    streams.set(name, master.clone());
    master.jump();
  }
  return (spec) => {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const fanIn = spec.shape.slice(1).reduce((a, b) => a * b, 1);
    // The fixture harness's initialisation (test/fixtures/README.md, "Weights").
    const [scale, shift] = {
      matrix: [1 / Math.sqrt(fanIn), 0],
      bias: [0.1, 0],
      gain: [0.1, 1],
      table: [1, 0],
    }[spec.init];
    return normals(streams.get(spec.name)!.clone(), n, scale, shift);
  };
}

/**
 * n samples of shift + scale·N(0,1): Marsaglia's polar method on the generator's uniform doubles
 * (twice as fast as Box–Muller here, as it needs no sin/cos).
 */
function normals(rng: RandomGenerator, n: number, scale: number, shift: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    let u: number, v: number, s: number;
    do {
      u = 2 * uniformFloat64(rng) - 1;
      v = 2 * uniformFloat64(rng) - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = scale * Math.sqrt((-2 * Math.log(s)) / s);
    out[i] = shift + u * f;
    if (i + 1 < n) out[i + 1] = shift + v * f;
  }
  return out;
}

/** Writes model.safetensors, or M shards + index, generating each tensor only as it is written. */
function writeWeights(dir: string, specs: TensorSpec[], values: (spec: TensorSpec) => Float32Array, shards: number): number {
  const toWrite: TensorToWrite[] = specs.map((spec) => ({
    name: spec.name,
    dtype: spec.part === 'text' ? 'BF16' : 'F32',
    shape: spec.shape,
    data: () => values(spec),
  }));
  const sizeOf = (t: TensorToWrite) => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
  const totalSize = toWrite.reduce((sum, t) => sum + sizeOf(t), 0);
  if (shards === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), toWrite);
    return totalSize;
  }
  const groups = splitIntoShards(toWrite.map(sizeOf), shards);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${pad5(s + 1)}-of-${pad5(shards)}.safetensors`;
    const members = toWrite.filter((_, i) => groups[i] === s);
    for (const t of members) weightMap[t.name] = file;
    writeSafetensors(path.join(dir, file), members);
  }
  writeJson(dir, 'model.safetensors.index.json', { metadata: { total_size: totalSize }, weight_map: weightMap });
  return totalSize;
}

/**
 * Contiguous split of tensors (in model order) into `shards` groups of about equal bytes, like
 * save_pretrained's max_shard_size but with the count fixed; every shard gets at least one tensor.
 */
function splitIntoShards(sizes: number[], shards: number): number[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  const groups: number[] = [];
  let before = 0;
  let current = 0;
  sizes.forEach((size, i) => {
    const byBytes = Math.floor(((before + size / 2) * shards) / total);
    // never skip a shard, never go back, and leave one tensor for each remaining shard
    current = Math.max(current, Math.min(byBytes, current + 1), shards - (sizes.length - i));
    groups.push(current);
    before += size;
  });
  return groups;
}

const pad5 = (n: number) => String(n).padStart(5, '0');

/** HF writes JSON with sorted keys and 2-space indent; tokenizer.json is written compact. */
function writeJson(dir: string, name: string, value: unknown, pretty = true): void {
  const text = pretty ? JSON.stringify(sortKeys(value), null, 2) + '\n' : JSON.stringify(value);
  fs.writeFileSync(path.join(dir, name), text);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
  }
  return value;
}
