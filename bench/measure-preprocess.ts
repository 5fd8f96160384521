import sharp from 'sharp';
import { decodeImage, preprocessImages, resizeImage, resizeOutputSize } from '../model/preprocess/image-processor.ts';
import { parseImageProcessorConfig } from '../model/preprocess/preprocessor-config.ts';
import { median } from './median.ts';

export interface PreprocessFigures {
  /** JPEG bytes → the model's pixel_values [1, 3, 512, 512]: decode, PIL LANCZOS resize, crop, normalize. */
  preprocess_4096_jpeg_s: number;
  /** Of which: sharp's decode (with PIL's conversions). */
  preprocess_4096_decode_s: number;
  /** Of which: the PIL resize (4096 → 512, both passes). */
  preprocess_4096_resize_s: number;
}

/**
 * A photo-like size×size JPEG (noise blurred by σ 1, quality 90, 4:2:0: 4.8 MiB at 4096, a 16 MP phone photo's size): the decode and the
 * 8× LANCZOS shrink (49 taps per output pixel) dominate, as a camera upload would.
 */
export async function syntheticJpeg(size: number): Promise<Buffer> {
  const noise = Buffer.alloc(size * size * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.imul(i, 2654435761) >>> 24;
  return sharp(noise, { raw: { width: size, height: size, channels: 3 } }).blur(1).jpeg({ quality: 90 }).toBuffer();
}

/**
 * The image processor with Anole's config (shortest edge 512, LANCZOS, crop 512) on one
 * size×size JPEG, median of `reps` runs after one warm-up (the first run also compiles the loops).
 */
export async function measurePreprocess(log: (line: string) => void, size = 4096, reps = 5): Promise<PreprocessFigures> {
  const jpeg = await syntheticJpeg(size);
  const config = parseImageProcessorConfig({});
  const seconds = async (run: () => Promise<unknown> | unknown) => {
    const start = performance.now();
    await run();
    return (performance.now() - start) / 1000;
  };
  const whole: number[] = [];
  const decode: number[] = [];
  const resize: number[] = [];
  await preprocessImages([jpeg], config);
  for (let i = 0; i < reps; i++) {
    whole.push(await seconds(() => preprocessImages([jpeg], config)));
    let image = await decodeImage(jpeg);
    decode.push(await seconds(async () => (image = await decodeImage(jpeg))));
    const { width, height } = resizeOutputSize(image.width, image.height, config.size);
    resize.push(await seconds(() => resizeImage(image, width, height, config.resample)));
  }
  const figures = { preprocess_4096_jpeg_s: median(whole), preprocess_4096_decode_s: median(decode), preprocess_4096_resize_s: median(resize) };
  log(`preprocess ${size}×${size} JPEG (${(jpeg.length / 2 ** 20).toFixed(1)} MiB) → [1, 3, 512, 512]: ${figures.preprocess_4096_jpeg_s.toFixed(3)} s ` +
    `(decode ${figures.preprocess_4096_decode_s.toFixed(3)} s, PIL LANCZOS resize ${figures.preprocess_4096_resize_s.toFixed(3)} s; median of ${reps})`);
  return figures;
}

// `npx tsx bench/measure-preprocess.ts`: this figure alone (the JSON on the last line).
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const figures = await measurePreprocess((line) => process.stderr.write(`bench: ${line}\n`));
  process.stdout.write(JSON.stringify(figures) + '\n');
}
