import sharp from 'sharp';
import { decodePilPixels } from './pil-convert.ts';
import { pilResize } from './pil-resample.ts';
import type { ImageProcessorConfig, ResizeTarget } from './preprocessor-config.ts';

/**
 * AnoleImageProcessor (image_processing_anole.py @241464, slow PIL path), pixel for pixel:
 *
 *   bytes ─decode as PIL (pil-convert)─▶ RGB, or RGBA ─blend_rgba on white─▶ RGB u8 [H,W,3]
 *         ─PIL resize, shortest edge (pil-resample)─▶ ─centre crop─▶ RGB u8 [h,w,3]
 *         ─× rescale_factor, (x − mean)/std─▶ float32 [3,h,w]
 *
 * and `postprocess`, its inverse back to uint8. sharp only decodes and encodes; every step after
 * decoding is the reference's arithmetic, checked bit for bit against its goldens and Pillow's output.
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
 * Decodes any format sharp reads (PNG, JPEG, WebP, GIF, TIFF, AVIF…; first frame only) to the
 * RGB image HF's `blend_rgba` makes of PIL's decode: transparency composited onto white, CMYK and
 * 16-bit greyscale converted as PIL converts them, EXIF orientation and ICC profiles ignored.
 */
export async function decodeImage(input: Uint8Array, options: DecodeOptions = {}): Promise<RgbImage> {
  if (!input || input.length === 0) throw new ImageInputError('EMPTY_INPUT', 'image input is empty');
  const limitInputPixels = options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  let decoded: Awaited<ReturnType<typeof decodePilPixels>>;
  try {
    decoded = await decodePilPixels(input, limitInputPixels);
  } catch (e) {
    const reason = (e as Error).message;
    if (/pixel limit/i.test(reason)) {
      throw new ImageInputError('TOO_LARGE', `image exceeds the limit of ${limitInputPixels} pixels (${reason})`);
    }
    throw new ImageInputError('UNDECODABLE', `cannot decode image (${input.length} bytes): ${reason}`);
  }
  const { width, height, channels, data } = decoded;
  return channels === 3 ? { width, height, data } : compositeOnWhite(data, width, height);
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

/**
 * PIL's `Image.resize((width, height), resample)` as HF's `resize` calls it (no reducing_gap), in
 * our own code (pil-resample.ts): every filter id 0–5, byte for byte Pillow's.
 */
export function resizeImage(image: RgbImage, width: number, height: number, resample: number): RgbImage {
  return pilResize(image, width, height, resample);
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
    image = resizeImage(image, width, height, config.resample);
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
