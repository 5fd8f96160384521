import fs from 'node:fs/promises';
import { encodePng, postprocess } from '../../model/preprocess/image-processor.ts';
import { AnoleProcessor } from '../../model/preprocess/processor.ts';
import { ImageCodec } from '../../sidecar/engine/image-codec.ts';
import { openModel } from '../../sidecar/engine/model-source.ts';
import { loadImageProcessorConfig } from '../../model/preprocess/preprocessor-config.ts';
import { withProgress } from '../progress.ts';

/** `encode-image --image FILE --output OUT.json`: {codes, token_ids} through the image processor and the VQ encoder. */
export async function encodeImageCommand(modelDir: string, opts: { image: string; output: string }): Promise<void> {
  const model = openModel(modelDir);
  const processor = await AnoleProcessor.load(modelDir);
  const bytes = await fs.readFile(opts.image);
  const { pixelValues } = await processor.process(processor.config.imageToken, [bytes]);
  const codec = await ImageCodec.load(model);
  const { codes } = await withProgress('encoding', () => codec.encode(pixelValues!, 1));
  const result = { codes: Array.from(codes[0]), token_ids: Array.from(codec.codesToTokens(codes[0])) };
  await fs.writeFile(opts.output, JSON.stringify(result));
  await codec.release();
}

/** `decode-image --codes IN.json --output FILE.png [--raw OUT.bin]`: IN.json is {codes} or {token_ids}. */
export async function decodeImageCommand(modelDir: string, opts: { codes: string; output: string; raw?: string }): Promise<void> {
  const input = JSON.parse(await fs.readFile(opts.codes, 'utf8'));
  const codec = await ImageCodec.load(openModel(modelDir));
  const list = (name: string): number[] => {
    const v = input[name];
    if (!Array.isArray(v) || !v.every(Number.isInteger)) throw new Error(`${opts.codes}: "${name}" must be an array of integers`);
    if (v.length !== codec.imageSeqLength) throw new Error(`${opts.codes}: "${name}" has ${v.length} entries; an image has ${codec.imageSeqLength}`);
    return v;
  };
  let codes: number[];
  if (input.codes !== undefined) {
    codes = list('codes');
    const bad = codes.find((c) => c < 0 || c >= codec.vq.numEmbeddings);
    if (bad !== undefined) throw new Error(`${opts.codes}: code ${bad} is outside the codebook [0, ${codec.vq.numEmbeddings})`);
  } else if (input.token_ids !== undefined) {
    codes = Array.from(codec.tokensToCodes(list('token_ids')));
  } else {
    throw new Error(`${opts.codes}: expected {"codes": number[]} or {"token_ids": number[]}`);
  }
  const pixels = await withProgress('decoding', () => codec.decode([codes]));
  const { outChannels, resolution } = codec.vq;
  if (opts.raw) await fs.writeFile(opts.raw, new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength));
  const [image] = postprocess(pixels, [1, outChannels, resolution, resolution], loadImageProcessorConfig(modelDir));
  await fs.writeFile(opts.output, await encodePng(image));
  await codec.release();
}
