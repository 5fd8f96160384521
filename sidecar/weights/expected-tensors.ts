import type { AnoleConfig, VQConfig } from '../../model/config.ts';

/**
 * Every parameter a config implies, with its exact Hugging Face name and shape (docs/model.md
 * §2.10, §5.5). One list serves two readers: the checkpoint validator (is everything there?) and the random
 * checkpoint writer (what to generate). `init` says how the fixture harness initialises that kind of
 * parameter, which is all the writer needs to know about it.
 */
export interface TensorSpec {
  name: string;
  shape: number[];
  /** matrix: N(0,1)/sqrt(fan_in); bias: 0.1·N(0,1); gain: 1 + 0.1·N(0,1); table: N(0,1). */
  init: 'matrix' | 'bias' | 'gain' | 'table';
  /** The text decoder is stored in bf16, the VQ-VAE in fp32 (as in leloy/Anole-7b-v0.1-hf). */
  part: 'text' | 'vq';
}

/** A full AnoleForConditionalGeneration checkpoint: text decoder, then the VQ-VAE under `model.vqmodel.`. */
export function anoleTensors(config: AnoleConfig): TensorSpec[] {
  return [...textTensors(config), ...vqTensors(config.vq, 'model.vqmodel.')];
}

/** The text decoder (HF-main layout: q/k-norm affine per head, [heads, head_dim]). */
export function textTensors(config: AnoleConfig): TensorSpec[] {
  const { vocabSize: V, hiddenSize: C, intermediateSize: F, numAttentionHeads: H, numKeyValueHeads: KV, headDim: D } = config;
  const out: TensorSpec[] = [];
  const add = (name: string, shape: number[], init: TensorSpec['init']) => out.push({ name, shape, init, part: 'text' });
  const linear = (name: string, outDim: number, inDim: number, bias: boolean) => {
    add(`${name}.weight`, [outDim, inDim], 'matrix');
    if (bias) add(`${name}.bias`, [outDim], 'bias');
  };

  add('model.embed_tokens.weight', [V, C], 'table');
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [C], 'gain');
    linear(`${p}.self_attn.q_proj`, H * D, C, config.attentionBias);
    linear(`${p}.self_attn.k_proj`, KV * D, C, config.attentionBias);
    linear(`${p}.self_attn.v_proj`, KV * D, C, config.attentionBias);
    linear(`${p}.self_attn.o_proj`, C, H * D, config.attentionBias);
    add(`${p}.self_attn.q_norm.weight`, [H, D], 'gain');
    add(`${p}.self_attn.q_norm.bias`, [H, D], 'bias');
    add(`${p}.self_attn.k_norm.weight`, [KV, D], 'gain');
    add(`${p}.self_attn.k_norm.bias`, [KV, D], 'bias');
    add(`${p}.post_attention_layernorm.weight`, [C], 'gain');
    linear(`${p}.mlp.gate_proj`, F, C, config.mlpBias);
    linear(`${p}.mlp.up_proj`, F, C, config.mlpBias);
    linear(`${p}.mlp.down_proj`, C, F, config.mlpBias);
  }
  add('model.norm.weight', [C], 'gain');
  // save_pretrained drops a tied head: it is the embedding.
  if (!config.tieWordEmbeddings) add('lm_head.weight', [V, C], 'matrix');
  return out;
}

/**
 * The VQ-VAE (taming-transformers layout as HF's ChameleonVQVAE builds it). `prefix` is
 * `model.vqmodel.` inside a full checkpoint and empty for a standalone AnoleVQVAE.
 */
export function vqTensors(vq: VQConfig, prefix: string): TensorSpec[] {
  const out: TensorSpec[] = [];
  const add = (name: string, shape: number[], init: TensorSpec['init']) => out.push({ name: prefix + name, shape, init, part: 'vq' });
  const conv = (name: string, cout: number, cin: number, k: number) => {
    add(`${name}.weight`, [cout, cin, k, k], 'matrix');
    add(`${name}.bias`, [cout], 'bias');
  };
  const groupNorm = (name: string, c: number) => {
    add(`${name}.weight`, [c], 'gain');
    add(`${name}.bias`, [c], 'bias');
  };
  const resBlock = (name: string, cin: number, cout: number) => {
    groupNorm(`${name}.norm1`, cin);
    conv(`${name}.conv1`, cout, cin, 3);
    groupNorm(`${name}.norm2`, cout);
    conv(`${name}.conv2`, cout, cout, 3);
    if (cin !== cout) conv(`${name}.nin_shortcut`, cout, cin, 1);
  };
  const attnBlock = (name: string, c: number) => {
    groupNorm(`${name}.norm`, c);
    for (const proj of ['q', 'k', 'v', 'proj_out']) conv(`${name}.${proj}`, c, c, 1);
  };
  // Per-level attention only exists at resolutions listed in attn_resolutions (none in the real model).
  const hasAttn = (res: number) => vq.attnResolutions.includes(res);

  const levels = vq.channelMultiplier.length;
  const width = (level: number) => vq.baseChannels * vq.channelMultiplier[level];

  // Encoder: conv_in, num_res_blocks per level, a stride-2 downsample after every level but the last.
  conv('encoder.conv_in', vq.baseChannels, vq.inChannels, 3);
  let c = vq.baseChannels;
  let res = vq.resolution;
  for (let l = 0; l < levels; l++) {
    for (let b = 0; b < vq.numResBlocks; b++) {
      resBlock(`encoder.down.${l}.block.${b}`, c, width(l));
      c = width(l);
      if (hasAttn(res)) attnBlock(`encoder.down.${l}.attn.${b}`, c);
    }
    if (l !== levels - 1) {
      conv(`encoder.down.${l}.downsample.conv`, c, c, 3);
      res /= 2;
    }
  }
  resBlock('encoder.mid.block_1', c, c);
  attnBlock('encoder.mid.attn_1', c);
  resBlock('encoder.mid.block_2', c, c);
  groupNorm('encoder.norm_out', c);
  conv('encoder.conv_out', vq.doubleLatent ? 2 * vq.latentChannels : vq.latentChannels, c, 3);

  // HF's constructor gives quant_conv latent_channels inputs even with double_latent, which its own
  // forward cannot run; the graph (and so this check) takes what conv_out really produces.
  conv('quant_conv', vq.embedDim, vq.doubleLatent ? 2 * vq.latentChannels : vq.latentChannels, 1);
  add('quantize.embedding.weight', [vq.numEmbeddings, vq.embedDim], 'table');
  conv('post_quant_conv', vq.latentChannels, vq.embedDim, 1);

  // Decoder: mirror image, num_res_blocks + 1 per level, levels visited top-down but named by level.
  c = width(levels - 1);
  res = vq.quantStateDims[0];
  conv('decoder.conv_in', c, vq.latentChannels, 3);
  resBlock('decoder.mid.block_1', c, c);
  attnBlock('decoder.mid.attn_1', c);
  resBlock('decoder.mid.block_2', c, c);
  for (let l = levels - 1; l >= 0; l--) {
    for (let b = 0; b < vq.numResBlocks + 1; b++) {
      resBlock(`decoder.up.${l}.block.${b}`, c, width(l));
      c = width(l);
      if (hasAttn(res)) attnBlock(`decoder.up.${l}.attn.${b}`, c);
    }
    if (l !== 0) {
      conv(`decoder.up.${l}.upsample.conv`, c, c, 3);
      res *= 2;
    }
  }
  groupNorm('decoder.norm_out', c);
  conv('decoder.conv_out', vq.outChannels, c, 3);
  return out;
}
