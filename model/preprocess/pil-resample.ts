/**
 * PIL's `Image.resize(size, resample, box)` without reducing_gap, for 8-bit RGB images, written
 * after Pillow's src/libImaging/Resample.c (and Geometry.c's ImagingScaleAffine for NEAREST) so
 * that every output byte equals Pillow's. The model was trained on PIL-resized images; libvips
 * resamples differently (up to 19 levels off when enlarging).
 *
 * Resample.c, in short: one separable pass per axis, horizontal first, each rounding to uint8.
 * Per output pixel the filter (support × max(1, scale) wide) is sampled at pixel centres, the
 * weights are normalised to sum 1 in double, then turned into signed 22-bit fixed point; the sum
 * starts at ½ (rounding) and is clipped to 0..255 after an arithmetic shift. Before the
 * horizontal pass the source rows are cropped to those the vertical pass will read.
 */

import { simdPasses } from './pil-resample-simd.ts';

/** An 8-bit RGB image, HWC, row-major (same shape as image-processor's RgbImage). */
export interface Rgb8 {
  width: number;
  height: number;
  data: Uint8Array;
}

/** PIL's Resampling ids (Image.Resampling). */
export const PIL_RESAMPLE = { NEAREST: 0, LANCZOS: 1, BILINEAR: 2, BICUBIC: 3, BOX: 4, HAMMING: 5 } as const;

interface Filter {
  weight: (x: number) => number;
  support: number;
}

// The filters of Resample.c, operation for operation (hamming's 0.54f / 0.46f are C floats).
const HAMMING_A = Math.fround(0.54);
const HAMMING_B = Math.fround(0.46);

function sinc(x: number): number {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

const FILTERS: Record<number, Filter> = {
  [PIL_RESAMPLE.BOX]: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
  [PIL_RESAMPLE.BILINEAR]: {
    support: 1.0,
    weight: (x) => {
      if (x < 0.0) x = -x;
      return x < 1.0 ? 1.0 - x : 0.0;
    },
  },
  [PIL_RESAMPLE.HAMMING]: {
    support: 1.0,
    weight: (x) => {
      if (x < 0.0) x = -x;
      if (x === 0.0) return 1.0;
      if (x >= 1.0) return 0.0;
      x = x * Math.PI;
      return (Math.sin(x) / x) * (HAMMING_A + HAMMING_B * Math.cos(x));
    },
  },
  [PIL_RESAMPLE.BICUBIC]: {
    support: 2.0,
    weight: (x) => {
      const a = -0.5;
      if (x < 0.0) x = -x;
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    },
  },
  [PIL_RESAMPLE.LANCZOS]: { support: 3.0, weight: (x) => (-3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0) },
};

const PRECISION_BITS = 32 - 8 - 2;

/** Per output pixel: first source index, number of taps, and `ksize` fixed-point weights. */
export interface Coefficients {
  ksize: number;
  bounds: Int32Array;
  weights: Int32Array;
}

// C's (int) cast: truncation toward zero.
const toInt = (v: number) => Math.trunc(v);

/**
 * Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc`. in0/in1 are the box edges (C floats).
 */
export function precomputeCoefficients(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): Coefficients {
  const scale = Math.fround(Math.fround(in1) - Math.fround(in0)) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = Math.fround(in0) + (xx + 0.5) * scale;
    let ww = 0.0;
    let xmin = toInt(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = toInt(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      let v = x < xmax ? k[x] : 0;
      if (x < xmax && ww !== 0.0) v /= ww;
      weights[xx * ksize + x] = v < 0 ? toInt(-0.5 + v * (1 << PRECISION_BITS)) : toInt(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

const HALF = 1 << (PRECISION_BITS - 1);

/** Resample.c clip8: arithmetic shift, then clamp to a byte. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** ImagingResampleHorizontal_8bpc for 3 bands: rows offset … offset + outHeight − 1 of `src`. */
function resampleHorizontal(src: Rgb8, outWidth: number, outHeight: number, offset: number, c: Coefficients): Rgb8 {
  const out = new Uint8Array(outWidth * outHeight * 3);
  const { ksize, bounds, weights } = c;
  const inRow = src.width * 3;
  const data = src.data;
  for (let yy = 0; yy < outHeight; yy++) {
    const rowStart = (yy + offset) * inRow;
    let o = yy * outWidth * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = bounds[xx * 2];
      const xmax = bounds[xx * 2 + 1];
      const kOff = xx * ksize;
      let ss0 = HALF;
      let ss1 = HALF;
      let ss2 = HALF;
      let p = rowStart + xmin * 3;
      // int32 arithmetic like Pillow's INT32 sums (|sum| < 2^31 for any 8-bit input and these weights).
      for (let x = 0; x < xmax; x++, p += 3) {
        const w = weights[kOff + x];
        ss0 = (ss0 + Math.imul(data[p], w)) | 0;
        ss1 = (ss1 + Math.imul(data[p + 1], w)) | 0;
        ss2 = (ss2 + Math.imul(data[p + 2], w)) | 0;
      }
      out[o++] = clip8(ss0);
      out[o++] = clip8(ss1);
      out[o++] = clip8(ss2);
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/** ImagingResampleVertical_8bpc for 3 bands; `shift` is subtracted from every first row (the crop). */
function resampleVertical(src: Rgb8, outHeight: number, c: Coefficients, shift: number): Rgb8 {
  const rowLen = src.width * 3;
  const out = new Uint8Array(rowLen * outHeight);
  const acc = new Int32Array(rowLen);
  const { ksize, bounds, weights } = c;
  const data = src.data;
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2] - shift;
    const ymax = bounds[yy * 2 + 1];
    const kOff = yy * ksize;
    acc.fill(HALF);
    // Row by row over the taps: the same int32 sums as Pillow's per-pixel loop, in an order that streams memory.
    for (let y = 0; y < ymax; y++) {
      const w = weights[kOff + y];
      const base = (y + ymin) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] = (acc[i] + Math.imul(data[base + i], w)) | 0;
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]);
  }
  return { width: src.width, height: outHeight, data: out };
}

/** Geometry.c ImagingScaleAffine (what `resize` does for NEAREST): positions accumulated by repeated addition. */
function resizeNearest(src: Rgb8, width: number, height: number, box: readonly number[]): Rgb8 {
  const a0 = Math.fround(Math.fround(box[2]) - Math.fround(box[0])) / width;
  const a4 = Math.fround(Math.fround(box[3]) - Math.fround(box[1])) / height;
  const coord = (v: number) => (v < 0.0 ? -1 : Math.trunc(v));
  const xin = new Int32Array(width).fill(-1);
  let xo = Math.fround(box[0]) + a0 * 0.5;
  for (let x = 0; x < width; x++) {
    const xi = coord(xo);
    if (xi >= 0 && xi < src.width) xin[x] = xi;
    xo += a0;
  }
  const out = new Uint8Array(width * height * 3);
  let yo = Math.fround(box[1]) + a4 * 0.5;
  for (let y = 0; y < height; y++) {
    const yi = coord(yo);
    if (yi >= 0 && yi < src.height) {
      for (let x = 0; x < width; x++) {
        if (xin[x] < 0) continue;
        const s = (yi * src.width + xin[x]) * 3;
        const d = (y * width + x) * 3;
        out[d] = src.data[s];
        out[d + 1] = src.data[s + 1];
        out[d + 2] = src.data[s + 2];
      }
    }
    yo += a4;
  }
  return { width, height, data: out };
}

/**
 * `Image.resize((width, height), resample, box)` of an RGB image. `box` (left, upper, right,
 * lower) defaults to the whole image, as in PIL.
 */
export function pilResize(
  src: Rgb8,
  width: number,
  height: number,
  resample: number,
  box?: readonly [number, number, number, number],
  options: { simd?: boolean } = {},
): Rgb8 {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`pilResize: size must be positive integers, got ${width}×${height}`);
  }
  const b = box ?? [0, 0, src.width, src.height];
  const wholeImage = b[0] === 0 && b[1] === 0 && b[2] === src.width && b[3] === src.height;
  if (width === src.width && height === src.height && wholeImage) return { width, height, data: src.data.slice() };
  if (resample === PIL_RESAMPLE.NEAREST) return resizeNearest(src, width, height, b);
  const filter = FILTERS[resample];
  if (!filter) throw new Error(`pilResize: unsupported PIL resample id ${resample} (0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)`);

  // ImagingResampleInner. Its test compares box[2] with the output width, as Pillow does.
  const needHorizontal = width !== src.width || b[0] !== 0 || b[2] !== width;
  const needVertical = height !== src.height || b[1] !== 0 || b[3] !== height;
  const horiz = precomputeCoefficients(src.width, b[0], b[2], width, filter);
  const vert = precomputeCoefficients(src.height, b[1], b[3], height, filter);
  // Only the source rows the vertical pass reads go through the horizontal pass.
  const yboxFirst = vert.bounds[0];
  const yboxLast = vert.bounds[height * 2 - 2] + vert.bounds[height * 2 - 1];

  // The same sums either way; WebAssembly SIMD when the runtime has it (pil-resample-simd.ts).
  const simd = options.simd === false ? undefined : simdPasses();
  let image = src;
  let shift = 0;
  if (needHorizontal) {
    const rows = yboxLast - yboxFirst;
    image = simd
      ? { width, height: rows, data: simd.horizontal(src.data, src.width, yboxFirst, rows, width, horiz.bounds, horiz.weights, horiz.ksize) }
      : resampleHorizontal(src, width, rows, yboxFirst, horiz);
    shift = yboxFirst;
  }
  if (needVertical) {
    image = simd
      ? { width: image.width, height, data: simd.vertical(image.data, image.width * 3, height, vert.bounds, vert.weights, vert.ksize, shift) }
      : resampleVertical(image, height, vert, shift);
  }
  return image === src ? { width: src.width, height: src.height, data: src.data.slice() } : image;
}
