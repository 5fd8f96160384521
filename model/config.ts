/**
 * AnoleConfig and AnoleVQVAEConfig as Hugging Face defines them (configuration_anole.py @1536494),
 * with HF's defaults for every absent field: `save_pretrained` drops values equal to the class
 * default, so a real config.json is sparse. Both the sidecar (graph shapes) and the functions
 * (image size, image_seq_length) read a checkpoint through this one description.
 */

export interface VQConfig {
  embedDim: number;
  numEmbeddings: number;
  doubleLatent: boolean;
  latentChannels: number;
  resolution: number;
  inChannels: number;
  outChannels: number;
  baseChannels: number;
  channelMultiplier: number[];
  numResBlocks: number;
  attnResolutions: number[];
  dropout: number;
  attnType: string;
  /** Latent grid [h, w] = resolution / 2^(levels-1). */
  quantStateDims: [number, number];
}

export interface AnoleConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  hiddenAct: string;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: { type: string; factor: number } | null;
  attentionBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  modelParallelSize: number;
  swinNorm: boolean;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  imageTokenId: number;
  boiTokenId: number;
  eoiTokenId: number;
  /** Image tokens per image: quantStateDims h × w (1024 on the real 512×512 geometry). */
  imageSeqLength: number;
  vq: VQConfig;
  /** Token name → id, as the converter stores it in config.json (may be empty). */
  vocabularyMap: Record<string, number>;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

function pick<T>(raw: Json, names: string[], fallback: T, check: (v: unknown) => boolean, what: string): T {
  for (const name of names) {
    const v = raw[name];
    if (v === undefined || v === null) continue;
    if (!check(v)) throw new ConfigError(`${name} must be ${what}, got ${JSON.stringify(v)}`);
    return v as T;
  }
  return fallback;
}

const isPosInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const isNonNegInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown) => typeof v === 'boolean';
const isIntList = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isInteger(x));

/**
 * Parses `vq_config`. The 2024 converter writes the HF names and Meta's yaml names side by side
 * (`ch`, `ch_mult`, `z_channels`, `n_embed`, `out_ch`, `double_z`); either is accepted.
 */
export function parseVQConfig(raw: Json): VQConfig {
  const channelMultiplier = pick(raw, ['channel_multiplier', 'ch_mult'], [1, 1, 2, 2, 4], isIntList, 'a list of integers');
  const resolution = pick(raw, ['resolution'], 512, isPosInt, 'a positive integer');
  const config: VQConfig = {
    embedDim: pick(raw, ['embed_dim'], 256, isPosInt, 'a positive integer'),
    numEmbeddings: pick(raw, ['num_embeddings', 'n_embed'], 8192, isPosInt, 'a positive integer'),
    doubleLatent: pick(raw, ['double_latent', 'double_z'], false, isBool, 'a boolean'),
    latentChannels: pick(raw, ['latent_channels', 'z_channels'], 256, isPosInt, 'a positive integer'),
    resolution,
    inChannels: pick(raw, ['in_channels'], 3, isPosInt, 'a positive integer'),
    outChannels: pick(raw, ['out_channels', 'out_ch'], 3, isPosInt, 'a positive integer'),
    baseChannels: pick(raw, ['base_channels', 'ch'], 128, isPosInt, 'a positive integer'),
    channelMultiplier,
    numResBlocks: pick(raw, ['num_res_blocks'], 2, isPosInt, 'a positive integer'),
    attnResolutions: pick(raw, ['attn_resolutions'], [], isIntList, 'a list of integers'),
    dropout: pick(raw, ['dropout'], 0, isNum, 'a number'),
    attnType: pick(raw, ['attn_type'], 'vanilla', (v) => typeof v === 'string', 'a string'),
    quantStateDims: [0, 0],
  };
  if (channelMultiplier.length === 0) throw new ConfigError('vq_config.channel_multiplier must not be empty');
  const downsample = 2 ** (channelMultiplier.length - 1);
  if (resolution % downsample !== 0) {
    throw new ConfigError(`vq_config.resolution ${resolution} is not divisible by ${downsample} (2^(levels-1))`);
  }
  for (const c of channelMultiplier.map((m) => m * config.baseChannels)) {
    if (c % 32 !== 0) throw new ConfigError(`vq_config: every level's channels must be a multiple of 32 (GroupNorm groups), got ${c}`);
  }
  if (config.attnType !== 'vanilla') throw new ConfigError(`vq_config.attn_type ${config.attnType} is not supported (only "vanilla")`);
  config.quantStateDims = [resolution / downsample, resolution / downsample];
  return config;
}

/** Parses config.json of an Anole checkpoint. */
export function parseAnoleConfig(raw: Json): AnoleConfig {
  const hiddenSize = pick(raw, ['hidden_size'], 4096, isPosInt, 'a positive integer');
  const numAttentionHeads = pick(raw, ['num_attention_heads'], 32, isPosInt, 'a positive integer');
  const numKeyValueHeads = pick(raw, ['num_key_value_heads'], numAttentionHeads, isPosInt, 'a positive integer');
  if (hiddenSize % numAttentionHeads !== 0) {
    throw new ConfigError(`hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  }
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ConfigError(`num_attention_heads ${numAttentionHeads} is not divisible by num_key_value_heads ${numKeyValueHeads}`);
  }
  const headDim = hiddenSize / numAttentionHeads;
  if (headDim % 2 !== 0) throw new ConfigError(`head dimension ${headDim} must be even for rotary embeddings`);
  const vocabularyMap = pick<Record<string, number>>(raw, ['vocabulary_map'], {}, (v) => typeof v === 'object', 'an object');
  const ropeScaling = pick<AnoleConfig['ropeScaling']>(raw, ['rope_scaling'], null, (v) => typeof v === 'object', 'an object or null');
  if (ropeScaling) {
    if (!['linear', 'dynamic'].includes(ropeScaling.type) || !isNum(ropeScaling.factor) || ropeScaling.factor <= 1) {
      throw new ConfigError(`rope_scaling must be {type: "linear"|"dynamic", factor > 1}, got ${JSON.stringify(ropeScaling)}`);
    }
  }
  const hiddenAct = pick(raw, ['hidden_act'], 'silu', (v) => typeof v === 'string', 'a string');
  if (hiddenAct !== 'silu') throw new ConfigError(`hidden_act ${hiddenAct} is not supported (only "silu")`);
  const vq = parseVQConfig((raw.vq_config ?? {}) as Json);
  const vocabSize = pick(raw, ['vocab_size'], 65536, isPosInt, 'a positive integer');

  // BOS quirk (docs/model.md §1.1): the class default and leloy's generation_config say
  // bos_token_id 1, but the vocabulary has <s> = 0 and <pad> = 1. The vocabulary is the truth.
  const byName = (name: string) => (Number.isInteger(vocabularyMap[name]) ? vocabularyMap[name] : undefined);
  const config: AnoleConfig = {
    vocabSize,
    hiddenSize,
    intermediateSize: pick(raw, ['intermediate_size'], 11008, isPosInt, 'a positive integer'),
    numHiddenLayers: pick(raw, ['num_hidden_layers'], 32, isPosInt, 'a positive integer'),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    hiddenAct,
    maxPositionEmbeddings: pick(raw, ['max_position_embeddings'], 4096, isPosInt, 'a positive integer'),
    rmsNormEps: pick(raw, ['rms_norm_eps'], 1e-5, isNum, 'a number'),
    ropeTheta: pick(raw, ['rope_theta'], 10000, isNum, 'a number'),
    ropeScaling,
    attentionBias: pick(raw, ['attention_bias'], false, isBool, 'a boolean'),
    mlpBias: pick(raw, ['mlp_bias'], false, isBool, 'a boolean'),
    tieWordEmbeddings: pick(raw, ['tie_word_embeddings'], false, isBool, 'a boolean'),
    modelParallelSize: pick(raw, ['model_parallel_size'], 1, isPosInt, 'a positive integer'),
    swinNorm: pick(raw, ['swin_norm'], false, isBool, 'a boolean'),
    bosTokenId: byName('<s>') ?? pick(raw, ['bos_token_id'], 0, isNonNegInt, 'a token id'),
    eosTokenId: byName('</s>') ?? pick(raw, ['eos_token_id'], 2, isNonNegInt, 'a token id'),
    padTokenId: byName('<pad>') ?? pick(raw, ['pad_token_id'], 1, isNonNegInt, 'a token id'),
    imageTokenId: byName('<image>') ?? pick(raw, ['image_token_id'], 8711, isNonNegInt, 'a token id'),
    boiTokenId: byName('<racm3:break>') ?? pick(raw, ['boi_token_id'], 8197, isNonNegInt, 'a token id'),
    eoiTokenId: byName('<eoss>') ?? pick(raw, ['eoi_token_id'], 8196, isNonNegInt, 'a token id'),
    imageSeqLength: vq.quantStateDims[0] * vq.quantStateDims[1],
    vq,
    vocabularyMap,
  };
  for (const key of ['bosTokenId', 'eosTokenId', 'padTokenId', 'imageTokenId', 'boiTokenId', 'eoiTokenId'] as const) {
    if (config[key] >= vocabSize) throw new ConfigError(`${key} ${config[key]} is outside the vocabulary (vocab_size ${vocabSize})`);
  }
  return config;
}
