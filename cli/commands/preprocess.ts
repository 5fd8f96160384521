import fs from 'node:fs/promises';
import { ImageInputError, prepareImage, rescaleAndNormalize } from '../../model/preprocess/image-processor.ts';
import { loadImageProcessorConfig } from '../../model/preprocess/preprocessor-config.ts';

/**
 * `preprocess --image FILE --output OUT.bin [--u8 OUT.raw]`: the image processor alone, to compare
 * with the reference's. OUT.bin gets pixel_values [3, H, W] as little-endian float32; OUT.raw the
 * resized and cropped uint8 RGB image [H, W, 3] they were made from.
 */
export async function preprocessCommand(modelDir: string, opts: { image: string; output: string; u8?: string }): Promise<{ width: number; height: number }> {
  const config = loadImageProcessorConfig(modelDir);
  const bytes = await fs.readFile(opts.image);
  let image;
  try {
    image = await prepareImage(bytes, config);
  } catch (e) {
    if (e instanceof ImageInputError) throw new Error(`${opts.image}: ${e.message}`);
    throw e;
  }
  const pixelValues = rescaleAndNormalize(image, config);
  // Float32Array is host-endian; every platform Node runs on here is little-endian, but say so if not.
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) throw new Error('preprocess writes little-endian float32 and this host is big-endian');
  await fs.writeFile(opts.output, new Uint8Array(pixelValues.buffer, pixelValues.byteOffset, pixelValues.byteLength));
  if (opts.u8) await fs.writeFile(opts.u8, image.data);
  return { width: image.width, height: image.height };
}
