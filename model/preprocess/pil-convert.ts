import sharp from 'sharp';

/**
 * The pixels PIL hands the Anole processor's `blend_rgba`: `Image.open(...)` then
 * `convert("RGBA")` (Pillow 9.4, the reference's), decoded by sharp. blend_rgba passes a PIL
 * "RGB" image through untouched (so a PNG's tRNS colour key is ignored) and composites anything
 * else on white; this module returns RGB for the first and RGBA for the second.
 *
 * Where libvips' own conversion differs from PIL's, the stored samples are read and converted here:
 * - CMYK (JPEG, TIFF): PIL's cmyk2rgb, not an ICC transform;
 * - 16-bit greyscale PNG: PIL opens it as mode "I" and I→RGB clips to 255 (no scaling);
 * - RGB PNG with tRNS: PIL keeps mode RGB, the processor never sees an alpha channel.
 * ICC profiles and EXIF orientation are ignored, as PIL ignores them (sharp rotates only on request).
 */

export interface PilPixels {
  width: number;
  height: number;
  /** 3: RGB, used as is; 4: RGBA, for blend_rgba to composite. */
  channels: 3 | 4;
  data: Uint8Array;
}

/** The IHDR fields of a PNG and its grey tRNS key, or undefined for anything that is not a PNG. */
export interface PngHeader {
  bitDepth: number;
  colourType: number;
  /** tRNS of a greyscale PNG (colour type 0): the sample value that is transparent. */
  greyKey?: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Reads IHDR and, for greyscale, tRNS (chunks before the first IDAT). */
export function readPngHeader(bytes: Uint8Array): PngHeader | undefined {
  if (bytes.length < 33 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = (at: number) => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (type(12) !== 'IHDR') return undefined;
  const header: PngHeader = { bitDepth: bytes[24], colourType: bytes[25] };
  for (let at = 8; at + 12 <= bytes.length; ) {
    const length = view.getUint32(at);
    const kind = type(at + 4);
    if (kind === 'IDAT' || kind === 'IEND') break;
    if (kind === 'tRNS' && header.colourType === 0 && length >= 2 && at + 10 <= bytes.length) header.greyKey = view.getUint16(at + 8);
    at += 12 + length;
  }
  return header;
}

/** Convert.c MULDIV255: a·b/255 rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** Convert.c cmyk2rgb (Pillow 9.x): R = (255 − K) − C·(255 − K)/255, clipped. */
export function cmykToRgb(cmyk: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const nk = 255 - cmyk[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const v = nk - mulDiv255(cmyk[i * 4 + c], nk);
      out[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

/**
 * Mode "I" (16-bit grey PNG) → RGBA as PIL converts it: i2rgb clips each sample to 255, and a
 * tRNS key makes transparent the pixels whose clipped value equals the key's low byte
 * (Convert.c rgbT2rgba). Without a key the result is opaque, returned as RGB.
 */
export function grey16ToPil(samples: Uint16Array, pixels: number, greyKey?: number): { channels: 3 | 4; data: Uint8Array } {
  const channels = greyKey === undefined ? 3 : 4;
  const key = greyKey === undefined ? -1 : greyKey & 0xff;
  const out = new Uint8Array(pixels * channels);
  for (let i = 0; i < pixels; i++) {
    const v = samples[i] > 255 ? 255 : samples[i];
    out[i * channels] = v;
    out[i * channels + 1] = v;
    out[i * channels + 2] = v;
    if (channels === 4) out[i * 4 + 3] = v === key ? 0 : 255;
  }
  return { channels, data: out };
}

const bytesOf = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/**
 * Decodes `input` (first frame) to the pixels PIL would give blend_rgba. sharp's errors
 * (undecodable input, pixel limit) propagate for the caller to classify.
 */
export async function decodePilPixels(input: Uint8Array, limitInputPixels: number): Promise<PilPixels> {
  const open = () => sharp(input, { limitInputPixels, ignoreIcc: true });
  const meta = await open().metadata();
  const png = readPngHeader(input);

  if (meta.space === 'cmyk') {
    // pipelineColourspace('cmyk') keeps the stored samples (libvips un-inverts Adobe CMYK like PIL's "CMYK;I").
    const { data, info } = await open().pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 4) throw new Error(`CMYK image with ${info.channels} channels (an extra alpha or spot channel) is not supported`);
    return { width: info.width, height: info.height, channels: 3, data: cmykToRgb(bytesOf(data), info.width * info.height) };
  }

  if (png && png.colourType === 0 && png.bitDepth === 16) {
    const { data, info } = await open().toColourspace('grey16').extractChannel(0).raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    const samples = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
    return { width: info.width, height: info.height, ...grey16ToPil(samples, info.width * info.height, png.greyKey) };
  }

  const rgbOnly = (png && png.colourType === 2) || !meta.hasAlpha;
  const pipeline = open().toColourspace('srgb');
  const { data, info } = await (rgbOnly ? pipeline.removeAlpha() : pipeline.ensureAlpha()).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== (rgbOnly ? 3 : 4)) throw new Error(`decoded image has ${info.channels} channels, expected ${rgbOnly ? 'RGB' : 'RGBA'}`);
  return { width: info.width, height: info.height, channels: rgbOnly ? 3 : 4, data: bytesOf(data) };
}
