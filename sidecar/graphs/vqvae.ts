import { DataType, GraphBuilder, type BuiltModel } from '../onnx/graph-builder.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import type { VQConfig } from '../../model/config.ts';
import { attnBlock, conv, downsample, groupNorm, resBlock, swish, upsample, vqGraph, type VQGraph } from './vqvae-blocks.ts';

/**
 * Anole's VQ-VAE (HF AnoleVQVAE = ChameleonVQVAE encoder + AnoleVQVAEDecoder) as two ONNX graphs,
 * shaped entirely by the checkpoint's VQConfig (docs/model.md §5). Real model, for orientation:
 * 512² pixels, channels 128·[1,1,2,2,4], 32×32 latent of 256-d codes from an 8192-entry codebook.
 *
 *   encoder graph: pixel_values [B,in,R,R] → codes int64 [B,h·w], latent [B,embed,h,w]
 *   decoder graph: codes int64 [B,h·w] → pixel_values [B,out,R,R]
 */

/** Does level `level` (resolution R/2^level) carry per-block attention? */
function hasLevelAttention(vq: VQConfig, level: number): boolean {
  return vq.attnResolutions.includes(vq.resolution / 2 ** level);
}

/** Channels the encoder's conv_out produces (HF doubles them when double_latent is set). */
function encoderOutChannels(vq: VQConfig): number {
  return vq.doubleLatent ? 2 * vq.latentChannels : vq.latentChannels;
}

export function buildVQEncoder(ckpt: Checkpoint): BuiltModel {
  const vq = ckpt.vq;
  const v = vqGraph(new GraphBuilder('vq_encoder'), ckpt);
  const { g } = v;
  const levels = vq.channelMultiplier.length;
  const [h, w] = vq.quantStateDims;

  let x = g.input('pixel_values', DataType.FLOAT, ['batch', vq.inChannels, vq.resolution, vq.resolution]);
  let c = vq.baseChannels;
  x = conv(v, x, 'encoder.conv_in', vq.inChannels, c, 3); // [B,base,R,R]

  // Down levels: num_res_blocks ResBlocks (each followed by attention on attn_resolutions
  // levels), then a stride-2 downsample on every level but the last.
  for (let level = 0; level < levels; level++) {
    const cout = vq.baseChannels * vq.channelMultiplier[level];
    for (let b = 0; b < vq.numResBlocks; b++) {
      x = resBlock(v, x, `encoder.down.${level}.block.${b}`, c, cout);
      c = cout;
      if (hasLevelAttention(vq, level)) x = attnBlock(v, x, `encoder.down.${level}.attn.${b}`, c);
    }
    if (level !== levels - 1) x = downsample(v, x, `encoder.down.${level}.downsample`, c); // [B,c,R/2^(level+1),…]
  }

  x = middle(v, x, 'encoder.mid', c); // [B,c,h,w]
  x = swish(v, groupNorm(v, x, 'encoder.norm_out', c));
  const zc = encoderOutChannels(vq);
  x = conv(v, x, 'encoder.conv_out', c, zc, 3); // [B,zc,h,w]
  // HF builds quant_conv as latent_channels → embed_dim, which only fits when double_latent is off
  // (with it on, HF's own forward fails); the graph takes quant_conv over what conv_out produces.
  const latent = conv(v, x, 'quant_conv', zc, vq.embedDim, 1, { output: 'latent' }); // [B,embed,h,w]
  g.op('Identity', [nearestCodes(v, latent, vq)], {}, { output: 'codes' });

  g.output('codes', DataType.INT64, ['batch', h * w]);
  g.output('latent', DataType.FLOAT, ['batch', vq.embedDim, h, w]);
  return g.build();
}

export function buildVQDecoder(ckpt: Checkpoint): BuiltModel {
  const vq = ckpt.vq;
  const v = vqGraph(new GraphBuilder('vq_decoder'), ckpt);
  const { g } = v;
  const levels = vq.channelMultiplier.length;
  const [h, w] = vq.quantStateDims;

  const codes = g.input('codes', DataType.INT64, ['batch', h * w]);
  // get_codebook_entry: raster-ordered codes → [B,h,w,embed] → channels first.
  const codebook = v.param('quantize.embedding.weight', [vq.numEmbeddings, vq.embedDim]);
  const entries = g.op('Reshape', [g.op('Gather', [codebook, codes], { axis: 0 }), g.int64s([0, h, w, vq.embedDim])]);
  let x = g.op('Transpose', [entries], { perm: [0, 3, 1, 2] }); // [B,embed,h,w]
  x = conv(v, x, 'post_quant_conv', vq.embedDim, vq.latentChannels, 1); // [B,latent,h,w]

  let c = vq.baseChannels * vq.channelMultiplier[levels - 1];
  x = conv(v, x, 'decoder.conv_in', vq.latentChannels, c, 3); // [B,c,h,w]
  x = middle(v, x, 'decoder.mid', c);

  // Up levels run from the top level down; `up.{level}` is indexed by level. Each has
  // num_res_blocks + 1 ResBlocks (attention after each on attn_resolutions levels), then a
  // nearest ×2 upsample on every level but level 0.
  for (let level = levels - 1; level >= 0; level--) {
    const cout = vq.baseChannels * vq.channelMultiplier[level];
    for (let b = 0; b < vq.numResBlocks + 1; b++) {
      x = resBlock(v, x, `decoder.up.${level}.block.${b}`, c, cout);
      c = cout;
      if (hasLevelAttention(vq, level)) x = attnBlock(v, x, `decoder.up.${level}.attn.${b}`, c);
    }
    if (level !== 0) x = upsample(v, x, `decoder.up.${level}.upsample`, c); // [B,c,R/2^(level-1),…]
  }

  x = swish(v, groupNorm(v, x, 'decoder.norm_out', c));
  conv(v, x, 'decoder.conv_out', c, vq.outChannels, 3, { output: 'pixel_values' }); // [B,out,R,R], no tanh

  g.output('pixel_values', DataType.FLOAT, ['batch', vq.outChannels, vq.resolution, vq.resolution]);
  return g.build();
}

/** mid: ResBlock, AttnBlock, ResBlock at constant width (the attention is always there). */
function middle(v: VQGraph, x: string, name: string, c: number): string {
  x = resBlock(v, x, `${name}.block_1`, c, c);
  x = attnBlock(v, x, `${name}.attn_1`, c);
  return resBlock(v, x, `${name}.block_2`, c, c);
}

/**
 * The quantizer's code choice: per latent position (raster order), the codebook row with the
 * smallest ‖z‖² + ‖e‖² − 2·z·eᵀ, first index on ties — HF's exact formula, so near-ties resolve
 * as they do there up to float32 rounding. latent [B,embed,h,w] → codes int64 [B,h·w].
 */
function nearestCodes(v: VQGraph, latent: string, vq: VQConfig): string {
  const { g } = v;
  const codebook = v.param('quantize.embedding.weight', [vq.numEmbeddings, vq.embedDim]); // [K,embed]
  const z = g.op('Reshape', [g.op('Transpose', [latent], { perm: [0, 2, 3, 1] }), g.int64s([0, -1, vq.embedDim])]); // [B,N,embed]
  const zz = g.op('ReduceSumSquare', [z, g.int64s([-1])], { keepdims: 1 }); // [B,N,1]
  const ee = g.op('ReduceSumSquare', [codebook, g.int64s([1])], { keepdims: 0 }); // [K]
  const ze = g.op('MatMul', [z, g.op('Transpose', [codebook], { perm: [1, 0] })]); // [B,N,K]
  const distances = g.op('Sub', [g.op('Add', [zz, ee]), g.op('Mul', [g.float(2), ze])]); // [B,N,K]
  return g.op('ArgMin', [distances], { axis: -1, keepdims: 0, select_last_index: 0 }); // [B,N]
}
