import sharp, { type KernelEnum, type OutputInfo } from 'sharp';
import type { ImageProcessorConfig, ResizeTarget } from './preprocessor-config.ts';

/**
 * AnoleImageProcessor (image_processing_anole.py @241464, slow PIL path) on sharp:
 *
 *   bytes ─decode─▶ RGBA u8 ─composite on white─▶ RGB u8 [H,W,3]
 *         ─resize shortest edge─▶ ─centre crop─▶ RGB u8 [h,w,3]
 *         ─× rescale_factor, (x − mean)/std─▶ float32 [3,h,w]
 *
 * and `postprocess`, its inverse back to uint8. Each step is exported on its own so the
 * arithmetic after resizing can be checked bit for bit against the reference, apart from the
 * resampling filter (libvips is not PIL; see `resizeImage`).
 */

/** An 8-bit RGB image, HWC, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type ImageInputErrorCode = 'EMPTY_INPUT' | 'UNDECODABLE' | 'TOO_LARGE' | 'SIZE_MISMATCH' | 'IMAGE_COUNT_MISMATCH';

/** Bad image input from a caller (not a bug): the code lets a server map it to a 4xx. */
export class ImageInputError extends Error {
  readonly code: ImageInputErrorCode;

  constructor(code: ImageInputErrorCode, message: string) {
    super(message);
    this.name = 'ImageInputError';
    this.code = code;
  }
}

/** An 8K square. The decoded RGBA buffer of such an image is 256 MiB; anything larger is refused. */
export const DEFAULT_LIMIT_INPUT_PIXELS = 8192 * 8192;

export interface DecodeOptions {
  limitInputPixels?: number;
}

/**
 * Decodes any format sharp reads (PNG, JPEG, WebP, GIF, TIFF, AVIF…; first frame only) to RGB,
 * compositing transparency onto white like HF `blend_rgba`. Like PIL, EXIF orientation and
 * embedded ICC profiles are ignored: the model saw raw stored pixels.
 */
export async function decodeImage(input: Uint8Array, options: DecodeOptions = {}): Promise<RgbImage> {
  if (!input || input.length === 0) throw new ImageInputError('EMPTY_INPUT', 'image input is empty');
  const limitInputPixels = options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(input, { limitInputPixels, ignoreIcc: true })
      .toColourspace('srgb')
      .ensureAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    const reason = (e as Error).message;
    if (/pixel limit/i.test(reason)) {
      throw new ImageInputError('TOO_LARGE', `image exceeds the limit of ${limitInputPixels} pixels (${reason})`);
    }
    throw new ImageInputError('UNDECODABLE', `cannot decode image (${input.length} bytes): ${reason}`);
  }
  const { width, height, channels } = decoded.info;
  if (channels !== 4) throw new ImageInputError('UNDECODABLE', `decoded image has ${channels} channels, expected RGBA`);
  return compositeOnWhite(new Uint8Array(decoded.data.buffer, decoded.data.byteOffset, decoded.data.byteLength), width, height);
}

/**
 * HF `blend_rgba`: an image with any alpha < 255 is blended onto white in float64,
 * `(1 − a)·255 + a·rgb` with a = alpha/255, then truncated (numpy astype(uint8)); a fully
 * opaque one just loses its alpha channel.
 */
export function compositeOnWhite(rgba: Uint8Array, width: number, height: number): RgbImage {
  const pixels = width * height;
  const data = new Uint8Array(pixels * 3);
  let translucent = false;
  for (let i = 0; i < pixels; i++) if (rgba[i * 4 + 3] < 255) { translucent = true; break; }
  for (let i = 0; i < pixels; i++) {
    const a = rgba[i * 4 + 3] / 255;
    for (let c = 0; c < 3; c++) {
      const v = rgba[i * 4 + c];
      data[i * 3 + c] = translucent ? Math.trunc((1 - a) * 255 + a * v) : v;
    }
  }
  return { width, height, data };
}

/** HF `get_resize_output_image_size(default_to_square=False)`: long side = int(size·long/short), truncated. */
export function resizeOutputSize(width: number, height: number, target: ResizeTarget): { width: number; height: number } {
  if (!('shortestEdge' in target)) return { width: target.width, height: target.height };
  const size = target.shortestEdge;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? { width: size, height: newLong } : { width: newLong, height: size };
}

// PIL resample id → the libvips kernel for shrinking and the interpolator for enlarging.
const SHRINK_KERNEL: Record<number, keyof KernelEnum> = { 0: 'nearest', 1: 'lanczos3', 2: 'linear', 3: 'cubic' };
const ENLARGE_INTERPOLATOR: Record<number, 'nearest' | 'bilinear' | 'bicubic'> = { 0: 'nearest', 1: 'bicubic', 2: 'bilinear', 3: 'bicubic' };

/**
 * PIL's `Image.resize` approximated with sharp. PIL filters horizontally, rounds to uint8, then
 * filters vertically; so do we, one axis per pass (libvips alone would go vertical first: on
 * fixture A that costs max 13 levels instead of 2).
 * - Shrinking an axis: sharp's resize with the matching kernel (lanczos3 for LANCZOS), which like
 *   PIL widens the kernel by the scale factor.
 * - Enlarging an axis: libvips cannot convolve with Lanczos when enlarging — sharp's resize then
 *   interpolates bicubically whatever the kernel, and samples pixel corners rather than centres
 *   (max 79 levels off on fixture B). `enlargeAxis` interpolates at PIL's sample positions
 *   instead; what remains is bicubic vs Lanczos-3 (max 19, mean 0.24 levels on fixture B).
 */
export async function resizeImage(image: RgbImage, width: number, height: number, resample: number): Promise<RgbImage> {
  if (!(resample in SHRINK_KERNEL)) throw new Error(`unsupported PIL resample id ${resample}`);
  const horizontal = await resizeAxis(image, width, image.height, resample);
  return resizeAxis(horizontal, width, height, resample);
}

/** One pass that changes at most one axis. */
async function resizeAxis(image: RgbImage, width: number, height: number, resample: number): Promise<RgbImage> {
  if (width === image.width && height === image.height) return image;
  if (width < image.width || height < image.height) {
    const out = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .resize(width, height, { fit: 'fill', kernel: SHRINK_KERNEL[resample] })
      .raw()
      .toBuffer();
    return { width, height, data: new Uint8Array(out.buffer, out.byteOffset, out.byteLength) };
  }
  return enlargeAxis(image, width, height, ENLARGE_INTERPOLATOR[resample]);
}

// Edge pixels replicated around the input so the interpolator never reads libvips' black background.
const ENLARGE_PAD = 4;

/**
 * Output pixel X samples the input at (X + ½)/s − ½, as PIL does (pixel centres). With libvips'
 * affine `X = s·(x + idx) + odx` on the padded input (x = x_in + pad), that is idx = ½ and
 * odx = −½ − s·pad; the output then starts at X = 0, so its top-left width × height is the image.
 * libvips' nearest takes floor(x) where PIL takes floor((X + ½)/s): idx = 0 for it.
 */
async function enlargeAxis(image: RgbImage, width: number, height: number, interpolator: 'nearest' | 'bilinear' | 'bicubic'): Promise<RgbImage> {
  const sx = width / image.width;
  const sy = height / image.height;
  const pad = ENLARGE_PAD;
  const centre = interpolator === 'nearest' ? 0 : 0.5;
  const padded = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .extend({ top: pad, bottom: pad, left: pad, right: pad, extendWith: 'copy' })
    .raw()
    .toBuffer();
  const { data, info } = await sharp(padded, { raw: { width: image.width + 2 * pad, height: image.height + 2 * pad, channels: 3 } })
    .affine([sx, 0, 0, sy], { idx: centre, idy: centre, odx: -0.5 - sx * pad, ody: -0.5 - sy * pad, interpolator })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width < width || info.height < height) {
    throw new Error(`affine enlarge produced ${info.width}×${info.height}, smaller than ${width}×${height}`);
  }
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) out.set(data.subarray(y * info.width * 3, (y * info.width + width) * 3), y * width * 3);
  return { width, height, data: out };
}

/**
 * HF `center_crop`: top = (H − h)//2, left = (W − w)//2 (floor division). A crop larger than the
 * image is zero-padded around it, which is what HF's pad-then-crop amounts to.
 */
export function centerCrop(image: RgbImage, height: number, width: number): RgbImage {
  const top = Math.floor((image.height - height) / 2);
  const left = Math.floor((image.width - width) / 2);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= image.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= image.width) continue;
      const s = (sy * image.width + sx) * 3;
      const d = (y * width + x) * 3;
      data[d] = image.data[s];
      data[d + 1] = image.data[s + 1];
      data[d + 2] = image.data[s + 2];
    }
  }
  return { width, height, data };
}

/**
 * HWC uint8 → CHW float32, written into `out` at `offset` (one image of a batch).
 * Rescale is HF `rescale`: float64 product, cast to float32. Normalize is HF `normalize`:
 * float32 (x − mean)/std with mean/std cast to float32. Math.fround after each float64 op gives
 * the float32 result exactly (double rounding is harmless for one +, −, ×, ÷ of float32s).
 */
export function rescaleAndNormalize(
  image: RgbImage,
  config: ImageProcessorConfig,
  out: Float32Array = new Float32Array(3 * image.width * image.height),
  offset = 0,
): Float32Array {
  const plane = image.width * image.height;
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(config.imageMean[c]);
    const std = Math.fround(config.imageStd[c]);
    for (let i = 0; i < plane; i++) {
      const p = image.data[i * 3 + c];
      let v = config.doRescale ? Math.fround(p * config.rescaleFactor) : p;
      if (config.doNormalize) v = Math.fround(Math.fround(v - mean) / std);
      out[offset + c * plane + i] = v;
    }
  }
  return out;
}

/**
 * Decode → composite → resize → crop: the uint8 image the model's pixel values are made from.
 * Always RGB: with do_convert_rgb false HF would pass 4-channel RGBA on, which no VQ encoder takes.
 */
export async function prepareImage(input: Uint8Array, config: ImageProcessorConfig, options: DecodeOptions = {}): Promise<RgbImage> {
  let image = await decodeImage(input, options);
  if (config.doResize) {
    const { width, height } = resizeOutputSize(image.width, image.height, config.size);
    image = await resizeImage(image, width, height, config.resample);
  }
  if (config.doCenterCrop) image = centerCrop(image, config.cropSize.height, config.cropSize.width);
  return image;
}

export interface PixelBatch {
  /** [N,3,H,W] float32, row-major. */
  pixelValues: Float32Array;
  dims: [number, number, number, number];
}

/** Images → one [N,3,H,W] batch. All images must come out the same size (they do with centre crop). */
export async function preprocessImages(inputs: Uint8Array[], config: ImageProcessorConfig, options: DecodeOptions = {}): Promise<PixelBatch> {
  const images: RgbImage[] = [];
  for (const input of inputs) images.push(await prepareImage(input, config, options));
  if (images.length === 0) return { pixelValues: new Float32Array(0), dims: [0, 3, config.cropSize.height, config.cropSize.width] };
  const { width, height } = images[0];
  const odd = images.findIndex((im) => im.width !== width || im.height !== height);
  if (odd >= 0) {
    throw new ImageInputError(
      'SIZE_MISMATCH',
      `image ${odd} is ${images[odd].width}×${images[odd].height} after preprocessing but image 0 is ${width}×${height}; enable center crop to batch them`,
    );
  }
  const per = 3 * width * height;
  const pixelValues = new Float32Array(images.length * per);
  images.forEach((im, n) => rescaleAndNormalize(im, config, pixelValues, n * per));
  return { pixelValues, dims: [images.length, 3, height, width] };
}

/**
 * AnoleImageProcessor.postprocess: x·std + mean, × (1/rescale_factor), clip to [0, 255], truncate
 * to uint8 (astype, not rounding). [N,3,H,W] → N HWC images. Every step is float32 arithmetic: of
 * the float32/float64 orderings, only this one reproduces both fixtures' goldens exactly.
 */
export function postprocess(pixelValues: Float32Array, dims: readonly number[], config: ImageProcessorConfig): RgbImage[] {
  const [n, channels, height, width] = dims;
  if (channels !== 3) throw new Error(`postprocess expects 3 channels, got dims [${dims}]`);
  if (pixelValues.length !== n * 3 * height * width) throw new Error(`pixel values have ${pixelValues.length} elements, dims [${dims}] need ${n * 3 * height * width}`);
  const scale = Math.fround(1 / config.rescaleFactor);
  const std = config.imageStd.map(Math.fround);
  const mean = config.imageMean.map(Math.fround);
  const plane = height * width;
  const images: RgbImage[] = [];
  for (let b = 0; b < n; b++) {
    const data = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const base = (b * 3 + c) * plane;
      for (let i = 0; i < plane; i++) {
        let v = pixelValues[base + i];
        if (config.doNormalize) v = Math.fround(Math.fround(v * std[c]) + mean[c]);
        if (config.doRescale) v = Math.fround(v * scale);
        data[i * 3 + c] = Math.trunc(Math.min(255, Math.max(0, v)));
      }
    }
    images.push({ width, height, data });
  }
  return images;
}

export async function encodePng(image: RgbImage): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}
