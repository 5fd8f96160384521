import type { VQConfig } from '../../model/config.ts';

/**
 * A plain TypeScript VQ-VAE (HF ChameleonVQVAE encoder + AnoleVQVAEDecoder, docs/model.md §5)
 * in float64 with naive loops, one image at a time. Tests use it where the fixtures do not reach
 * (per-level attention, double_latent); it is written from the HF module code, not from the
 * ONNX graph code, so the two can disagree.
 */

/** One image's activation: channels × height × width, row-major. */
export interface Act {
  c: number;
  h: number;
  w: number;
  data: Float64Array;
}

/** Reads a VQ tensor (name without the VQ prefix). */
export type Weights = (name: string) => Float32Array;

function conv2d(x: Act, w: Weights, name: string, cout: number, k: number, stride = 1, pads = [(k - 1) / 2, (k - 1) / 2, (k - 1) / 2, (k - 1) / 2]): Act {
  const weight = w(`${name}.weight`);
  const bias = w(`${name}.bias`);
  // Locals, not x.*, in the loops: activations come in several object shapes.
  const { c: cin, h: ih, w: iw, data: input } = x;
  const [top, left, bottom, right] = pads;
  const oh = Math.floor((ih + top + bottom - k) / stride) + 1;
  const ow = Math.floor((iw + left + right - k) / stride) + 1;
  const out = new Float64Array(cout * oh * ow);
  for (let co = 0; co < cout; co++) {
    const plane = out.subarray(co * oh * ow, (co + 1) * oh * ow);
    plane.fill(bias[co]);
    for (let ci = 0; ci < cin; ci++) {
      for (let ky = 0; ky < k; ky++) {
        for (let kx = 0; kx < k; kx++) {
          const wv = weight[((co * cin + ci) * k + ky) * k + kx];
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy * stride + ky - top;
            if (iy < 0 || iy >= ih) continue;
            const row = (ci * ih + iy) * iw;
            for (let ox = 0; ox < ow; ox++) {
              const ix = ox * stride + kx - left;
              if (ix >= 0 && ix < iw) plane[oy * ow + ox] += wv * input[row + ix];
            }
          }
        }
      }
    }
  }
  return { c: cout, h: oh, w: ow, data: out };
}

function groupNorm(x: Act, w: Weights, name: string): Act {
  const gamma = w(`${name}.weight`);
  const beta = w(`${name}.bias`);
  const groups = 32;
  const per = (x.c / groups) * x.h * x.w;
  const hw = x.h * x.w;
  const out = new Float64Array(x.data.length);
  for (let gi = 0; gi < groups; gi++) {
    const seg = x.data.subarray(gi * per, (gi + 1) * per);
    let mean = 0;
    for (const v of seg) mean += v;
    mean /= per;
    let variance = 0;
    for (const v of seg) variance += (v - mean) ** 2;
    variance /= per;
    const inv = 1 / Math.sqrt(variance + 1e-6);
    for (let i = 0; i < per; i++) {
      const ch = Math.floor((gi * per + i) / hw);
      out[gi * per + i] = (seg[i] - mean) * inv * gamma[ch] + beta[ch];
    }
  }
  return { ...x, data: out };
}

function swish(x: Act): Act {
  return { ...x, data: x.data.map((v) => v / (1 + Math.exp(-v))) };
}

function add(a: Act, b: Act): Act {
  return { ...a, data: a.data.map((v, i) => v + b.data[i]) };
}

function resBlock(x: Act, w: Weights, name: string, cout: number): Act {
  let h = conv2d(swish(groupNorm(x, w, `${name}.norm1`)), w, `${name}.conv1`, cout, 3);
  h = conv2d(swish(groupNorm(h, w, `${name}.norm2`)), w, `${name}.conv2`, cout, 3);
  return add(x.c === cout ? x : conv2d(x, w, `${name}.nin_shortcut`, cout, 1), h);
}

function attnBlock(x: Act, w: Weights, name: string): Act {
  const n = groupNorm(x, w, `${name}.norm`);
  const [q, k, v] = ['q', 'k', 'v'].map((p) => conv2d(n, w, `${name}.${p}`, x.c, 1).data);
  const C = x.c;
  const N = x.h * x.w;
  const scale = C ** -0.5;
  const o = new Float64Array(C * N);
  const scores = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let max = -Infinity;
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += q[c * N + i] * k[c * N + j];
      scores[j] = s * scale;
      max = Math.max(max, scores[j]);
    }
    let sum = 0;
    for (let j = 0; j < N; j++) sum += scores[j] = Math.exp(scores[j] - max);
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let j = 0; j < N; j++) acc += v[c * N + j] * scores[j];
      o[c * N + i] = acc / sum;
    }
  }
  return add(x, conv2d({ ...x, data: o }, w, `${name}.proj_out`, x.c, 1));
}

function upsampleNearest(x: Act): Act {
  const out = new Float64Array(x.c * x.h * 2 * x.w * 2);
  for (let c = 0; c < x.c; c++) {
    for (let y = 0; y < 2 * x.h; y++) {
      for (let xx = 0; xx < 2 * x.w; xx++) out[(c * 2 * x.h + y) * 2 * x.w + xx] = x.data[(c * x.h + (y >> 1)) * x.w + (xx >> 1)];
    }
  }
  return { c: x.c, h: 2 * x.h, w: 2 * x.w, data: out };
}

function middle(x: Act, w: Weights, name: string): Act {
  x = resBlock(x, w, `${name}.block_1`, x.c);
  x = attnBlock(x, w, `${name}.attn_1`);
  return resBlock(x, w, `${name}.block_2`, x.c);
}

/** encoder + quant_conv: one image [in,R,R] → latent [embed,h,w]. */
export function referenceEncode(vq: VQConfig, w: Weights, pixels: Float32Array): Act {
  let x: Act = { c: vq.inChannels, h: vq.resolution, w: vq.resolution, data: Float64Array.from(pixels) };
  x = conv2d(x, w, 'encoder.conv_in', vq.baseChannels, 3);
  const levels = vq.channelMultiplier.length;
  for (let l = 0; l < levels; l++) {
    for (let b = 0; b < vq.numResBlocks; b++) {
      x = resBlock(x, w, `encoder.down.${l}.block.${b}`, vq.baseChannels * vq.channelMultiplier[l]);
      if (vq.attnResolutions.includes(x.h)) x = attnBlock(x, w, `encoder.down.${l}.attn.${b}`);
    }
    if (l !== levels - 1) x = conv2d(x, w, `encoder.down.${l}.downsample.conv`, x.c, 3, 2, [0, 0, 1, 1]);
  }
  x = middle(x, w, 'encoder.mid');
  x = conv2d(swish(groupNorm(x, w, 'encoder.norm_out')), w, 'encoder.conv_out', vq.doubleLatent ? 2 * vq.latentChannels : vq.latentChannels, 3);
  return conv2d(x, w, 'quant_conv', vq.embedDim, 1);
}

/** Nearest codebook row per latent position (raster order), with the gap to the runner-up. */
export function referenceQuantize(vq: VQConfig, w: Weights, latent: Act): { codes: number[]; margins: number[] } {
  const codebook = w('quantize.embedding.weight');
  const N = latent.h * latent.w;
  const codes: number[] = [];
  const margins: number[] = [];
  for (let p = 0; p < N; p++) {
    let best = Infinity;
    let second = Infinity;
    let bestCode = -1;
    for (let code = 0; code < vq.numEmbeddings; code++) {
      let d = 0;
      for (let e = 0; e < vq.embedDim; e++) d += (latent.data[e * N + p] - codebook[code * vq.embedDim + e]) ** 2;
      if (d < best) {
        second = best;
        best = d;
        bestCode = code;
      } else if (d < second) second = d;
    }
    codes.push(bestCode);
    margins.push(second - best);
  }
  return { codes, margins };
}

/** post_quant_conv + decoder: one image's raster-ordered codes → pixels [out,R,R]. */
export function referenceDecode(vq: VQConfig, w: Weights, codes: ArrayLike<number>): Act {
  const codebook = w('quantize.embedding.weight');
  const [h, wd] = vq.quantStateDims;
  const e = new Float64Array(vq.embedDim * h * wd);
  for (let p = 0; p < h * wd; p++) {
    for (let d = 0; d < vq.embedDim; d++) e[d * h * wd + p] = codebook[codes[p] * vq.embedDim + d];
  }
  let x = conv2d({ c: vq.embedDim, h, w: wd, data: e }, w, 'post_quant_conv', vq.latentChannels, 1);
  const levels = vq.channelMultiplier.length;
  x = conv2d(x, w, 'decoder.conv_in', vq.baseChannels * vq.channelMultiplier[levels - 1], 3);
  x = middle(x, w, 'decoder.mid');
  for (let l = levels - 1; l >= 0; l--) {
    for (let b = 0; b < vq.numResBlocks + 1; b++) {
      x = resBlock(x, w, `decoder.up.${l}.block.${b}`, vq.baseChannels * vq.channelMultiplier[l]);
      if (vq.attnResolutions.includes(x.h)) x = attnBlock(x, w, `decoder.up.${l}.attn.${b}`);
    }
    if (l !== 0) x = conv2d(upsampleNearest(x), w, `decoder.up.${l}.upsample.conv`, x.c, 3);
  }
  return conv2d(swish(groupNorm(x, w, 'decoder.norm_out')), w, 'decoder.conv_out', vq.outChannels, 3);
}
