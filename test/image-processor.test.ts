import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import {
  centerCrop,
  compositeOnWhite,
  decodeImage,
  encodePng,
  ImageInputError,
  postprocess,
  prepareImage,
  preprocessImages,
  resizeImage,
  rescaleAndNormalize,
  resizeOutputSize,
  type RgbImage,
} from '../model/preprocess/image-processor.ts';
import { loadImageProcessorConfig } from '../model/preprocess/preprocessor-config.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';

const A = 'test/fixtures/anole-tiny';
const B = 'test/fixtures/anole-tiny-512';
const inputImage = fs.readFileSync(`${A}/input_image.png`);

function golden(dir: string, name: string): { shape: number[]; f32: () => Float32Array; u8: () => Uint8Array } {
  const entry = readSafetensorsHeader(`${dir}/goldens.safetensors`).tensors.get(name);
  if (!entry) throw new Error(`no golden ${name} in ${dir}`);
  return {
    shape: entry.shape,
    f32: () => readTensorAsFloat32(entry),
    u8: () => {
      expect(entry.dtype).toBe('U8');
      const bytes = new Uint8Array(entry.byteLength);
      const fd = fs.openSync(entry.file, 'r');
      fs.readSync(fd, bytes, 0, entry.byteLength, entry.offset);
      fs.closeSync(fd);
      return bytes;
    },
  };
}

function u8Diff(a: Uint8Array, b: Uint8Array): { max: number; exact: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let exact = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    if (d === 0) exact++;
  }
  return { max, exact };
}

/** Golden pixel values of the default pipeline back to the uint8 levels they were made from. */
function levelsFromPixelValues(pv: Float32Array, size: number, rescale: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let c = 0; c < 3; c++) for (let i = 0; i < size * size; i++) data[i * 3 + c] = Math.round((pv[c * size * size + i] + 1) / rescale);
  return { width: size, height: size, data };
}

describe('image processor: preprocessing against the HF goldens', () => {
  const configA = loadImageProcessorConfig(A);
  const configB = loadImageProcessorConfig(B);

  it('reads preprocessor_config.json (literal rescale factor 0.0078, LANCZOS, 64 for fixture A)', () => {
    expect(configA.size).toEqual({ shortestEdge: 64 });
    expect(configA.cropSize).toEqual({ height: 64, width: 64 });
    expect(configA.rescaleFactor).toBe(0.0078);
    expect(configA.resample).toBe(1);
    expect(configB.size).toEqual({ shortestEdge: 512 });
  });

  it('rescale + normalize of the golden resized uint8 image equals processor.pixel_values bit for bit', () => {
    const u8 = golden(A, 'processor.resized_cropped_u8');
    expect(u8.shape).toEqual([64, 64, 3]);
    const image: RgbImage = { width: 64, height: 64, data: u8.u8() };
    const mine = rescaleAndNormalize(image, configA);
    const expected = golden(A, 'processor.pixel_values').f32();
    expect(mine.length).toBe(expected.length);
    expect(Buffer.from(mine.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });

  it('same arithmetic at 512 (fixture B): golden levels → rescale + normalize is bitwise processor.pixel_values', () => {
    const expected = golden(B, 'processor.pixel_values').f32();
    const mine = rescaleAndNormalize(levelsFromPixelValues(expected, 512, configB.rescaleFactor), configB);
    expect(Buffer.from(mine.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });

  it('fixture A (300×200 → 96×64 downscale, crop 64): the resized-cropped uint8 image and pixel_values bit for bit', async () => {
    const mine = await prepareImage(inputImage, configA);
    expect([mine.width, mine.height]).toEqual([64, 64]);
    const { max, exact } = u8Diff(mine.data, golden(A, 'processor.resized_cropped_u8').u8());
    expect({ max, exact }).toEqual({ max: 0, exact: mine.data.length });

    const { pixelValues, dims } = await preprocessImages([inputImage], configA);
    expect(dims).toEqual([1, 3, 64, 64]);
    const expected = golden(A, 'processor.pixel_values').f32();
    expect(Buffer.from(pixelValues.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });

  it('fixture B (300×200 → 768×512 upscale, crop 512): the uint8 levels and pixel_values bit for bit', async () => {
    const mine = await prepareImage(inputImage, configB);
    const expected = golden(B, 'processor.pixel_values').f32();
    const goldenLevels = levelsFromPixelValues(expected, 512, configB.rescaleFactor).data;
    expect(u8Diff(mine.data, goldenLevels)).toEqual({ max: 0, exact: goldenLevels.length });

    const { pixelValues, dims } = await preprocessImages([inputImage], configB);
    expect(dims).toEqual([1, 3, 512, 512]);
    expect(Buffer.from(pixelValues.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });
});

describe('image processor: postprocess', () => {
  for (const dir of [A, B]) {
    it(`vq.decoded_pixel_values → uint8 matches vq.decoded_postprocessed_u8 (${dir.split('/').pop()}), and the PNG round-trips`, async () => {
      const config = loadImageProcessorConfig(dir);
      const decoded = golden(dir, 'vq.decoded_pixel_values');
      const [image] = postprocess(decoded.f32(), decoded.shape, config);
      const expected = golden(dir, 'vq.decoded_postprocessed_u8').u8();
      const { max, exact } = u8Diff(image.data, expected);
      console.log(`postprocess (${dir.split('/').pop()}): ${exact}/${expected.length} exact, max diff ${max}`);
      expect(max).toBeLessThanOrEqual(1);
      expect(exact).toBe(expected.length);

      const png = await encodePng(image);
      const back = await decodeImage(png);
      expect([back.width, back.height]).toEqual([image.width, image.height]);
      expect(Buffer.from(back.data).equals(Buffer.from(image.data))).toBe(true);
      // The reference's PNG of the same image decodes to the golden bytes too.
      const reference = await decodeImage(fs.readFileSync(`${dir}/golden_vq_roundtrip.png`));
      expect(Buffer.from(reference.data).equals(Buffer.from(expected))).toBe(true);
    });
  }
});

describe('image processor: decoding, compositing, geometry', () => {
  it('composites transparency onto white in float64 and truncates, like HF blend_rgba', async () => {
    // Expected values computed with numpy: (1 − a)·255 + a·rgb, a = alpha/255, astype(uint8).
    const rgba = Uint8Array.from([0, 100, 200, 128, 255, 0, 10, 0, 7, 8, 9, 255, 200, 150, 50, 1, 33, 66, 99, 254]);
    const png = await sharp(rgba, { raw: { width: 5, height: 1, channels: 4 } }).png().toBuffer();
    const image = await decodeImage(png);
    expect([image.width, image.height]).toEqual([5, 1]);
    expect(Array.from(image.data)).toEqual([127, 177, 227, 255, 255, 255, 7, 8, 9, 254, 254, 254, 33, 66, 99]);
  });

  it('an opaque RGBA image, a greyscale image and grey+alpha all come out RGB', async () => {
    const opaque = await sharp(Uint8Array.from([1, 2, 3, 255, 250, 251, 252, 255]), { raw: { width: 2, height: 1, channels: 4 } }).png().toBuffer();
    expect(Array.from((await decodeImage(opaque)).data)).toEqual([1, 2, 3, 250, 251, 252]);
    const grey = await sharp(Uint8Array.from([10, 200]), { raw: { width: 2, height: 1, channels: 1 } }).png().toBuffer();
    expect(Array.from((await decodeImage(grey)).data)).toEqual([10, 10, 10, 200, 200, 200]);
    const greyAlpha = await sharp(Uint8Array.from([0, 0, 100, 255]), { raw: { width: 2, height: 1, channels: 2 } }).png().toBuffer();
    expect(Array.from((await decodeImage(greyAlpha)).data)).toEqual([255, 255, 255, 100, 100, 100]);
    expect(Array.from(compositeOnWhite(Uint8Array.from([9, 8, 7, 255]), 1, 1).data)).toEqual([9, 8, 7]);
  });

  it('accepts WebP (lossless) and JPEG input', async () => {
    const golden64 = golden(A, 'processor.resized_cropped_u8').u8();
    const raw = { raw: { width: 64, height: 64, channels: 3 as const } };
    const webp = await sharp(golden64, raw).webp({ lossless: true }).toBuffer();
    expect(Buffer.from((await decodeImage(webp)).data).equals(Buffer.from(golden64))).toBe(true);
    // Lossy, so only close: quality 100 without chroma subsampling.
    const jpeg = await sharp(golden64, raw).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();
    const fromJpeg = await decodeImage(jpeg);
    expect([fromJpeg.width, fromJpeg.height]).toEqual([64, 64]);
    expect(u8Diff(fromJpeg.data, golden64).max).toBeLessThanOrEqual(4); // measured 3
  });

  it('rejects empty, undecodable and oversized input with a coded ImageInputError', async () => {
    await expect(decodeImage(new Uint8Array(0))).rejects.toMatchObject({ name: 'ImageInputError', code: 'EMPTY_INPUT' });
    await expect(decodeImage(Buffer.from('definitely not an image'))).rejects.toMatchObject({ code: 'UNDECODABLE' });
    await expect(decodeImage(inputImage.subarray(0, 100))).rejects.toBeInstanceOf(ImageInputError);
    await expect(decodeImage(inputImage, { limitInputPixels: 300 * 200 - 1 })).rejects.toMatchObject({ code: 'TOO_LARGE' });
    expect((await decodeImage(inputImage, { limitInputPixels: 300 * 200 })).width).toBe(300);
  });

  it('computes the resize size with int() truncation of the long side', () => {
    expect(resizeOutputSize(300, 200, { shortestEdge: 64 })).toEqual({ width: 96, height: 64 });
    expect(resizeOutputSize(200, 333, { shortestEdge: 64 })).toEqual({ width: 64, height: 106 }); // 106.56
    expect(resizeOutputSize(300, 200, { shortestEdge: 512 })).toEqual({ width: 768, height: 512 });
    expect(resizeOutputSize(300, 200, { height: 10, width: 20 })).toEqual({ width: 20, height: 10 });
  });

  it('keeps a flat image flat for every filter, enlarging and shrinking (weights sum to 1 in fixed point)', () => {
    const flat = { width: 7, height: 5, data: new Uint8Array(7 * 5 * 3).fill(200) };
    for (const resample of [0, 1, 2, 3, 4, 5]) {
      for (const [w, h] of [[16, 11], [3, 11], [16, 2], [1, 1]]) {
        const out = resizeImage(flat, w, h, resample);
        expect([out.width, out.height]).toEqual([w, h]);
        expect(new Set(out.data)).toEqual(new Set([200]));
      }
    }
  });

  it('centre-crops with floor((H − h)/2) and zero-pads a crop larger than the image (HF pads ceil, crops floor)', () => {
    // 3×5 image whose pixel value is 10·y + x (all channels).
    const data = new Uint8Array(5 * 3 * 3);
    for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) data.fill(10 * y + x, (y * 5 + x) * 3, (y * 5 + x + 1) * 3);
    const image = { width: 5, height: 3, data };
    const channel0 = (im: RgbImage) => Array.from({ length: im.height }, (_, y) => Array.from({ length: im.width }, (_, x) => im.data[(y * im.width + x) * 3]));
    expect(channel0(centerCrop(image, 2, 2))).toEqual([[1, 2], [11, 12]]);
    expect(channel0(centerCrop(image, 4, 6))).toEqual([
      [0, 0, 0, 0, 0, 0],
      [0, 0, 1, 2, 3, 4],
      [0, 10, 11, 12, 13, 14],
      [0, 20, 21, 22, 23, 24],
    ]);
  });
});
