import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnoleProcessor, padBatch } from '../model/preprocess/processor.ts';
import { AnoleTokenizer } from '../model/preprocess/tokenizer.ts';
import { loadImageProcessorConfig, loadProcessorConfig } from '../model/preprocess/preprocessor-config.ts';
import { CheckpointError } from '../model/checkpoint-error.ts';

const A = 'test/fixtures/anole-tiny';
const goldens = JSON.parse(fs.readFileSync(`${A}/goldens.json`, 'utf8'));
const image = fs.readFileSync(`${A}/input_image.png`);

const tempDirs: string[] = [];
afterAll(() => tempDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function tempDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-processor-'));
  tempDirs.push(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

describe('AnoleTokenizer', () => {
  let tokenizer: AnoleTokenizer;
  beforeAll(async () => {
    tokenizer = await AnoleTokenizer.load(A);
  });

  it('resolves the special token ids from the tokenizer files (BOS is <s> = 0)', async () => {
    expect(tokenizer.specialIds).toEqual(goldens.special_ids);
    expect(tokenizer.specialTokens).toMatchObject({ bos: '<s>', sep: '<reserved08706>', image: '<image>', boi: '<racm3:break>', eoi: '<eoss>' });
    expect(tokenizer.vocabSize).toBe(65536);
  });

  it('encodes with BOS from the post-processor, or without it', async () => {
    const example = goldens.processor.text_completion_example;
    expect(await tokenizer.encode(example.text)).toEqual(example.input_ids);
    expect(await tokenizer.encode(example.text, { addSpecialTokens: false })).toEqual(example.input_ids.slice(1));
  });

  it('decode drops special tokens by default and keeps them on request', async () => {
    const ids: number[] = goldens.processor.input_ids;
    expect(await tokenizer.decode(ids)).toBe('What do you see in this image?');
    const withSpecials = await tokenizer.decode(ids, { skipSpecialTokens: false });
    expect(withSpecials).toBe(`<s>What do you see in this image?<racm3:break>${'<image>'.repeat(16)}<eoss><reserved08706>`);
    const [first, second] = await tokenizer.batchDecode([ids, goldens.generation.image_only.prompt_ids]);
    expect([first, second]).toEqual(['What do you see in this image?', 'Generate an image of a sunset over the sea.']);
  });

  it('names the file when tokenizer.json is missing or a special token is unknown', async () => {
    await expect(AnoleTokenizer.load(tempDir({}))).rejects.toThrow(/tokenizer\.json: missing/);
    const tokenizerJson = fs.readFileSync(`${A}/tokenizer.json`, 'utf8');
    const dir = tempDir({ 'tokenizer.json': tokenizerJson, 'special_tokens_map.json': JSON.stringify({ sep_token: '<no-such-token>' }) });
    await expect(AnoleTokenizer.load(dir)).rejects.toThrow(/sep_token "<no-such-token>" is not in the vocabulary/);
  });
});

describe('AnoleProcessor against the HF goldens', () => {
  let processor: AnoleProcessor;
  beforeAll(async () => {
    processor = await AnoleProcessor.load(A);
  });

  it('expands <image>, appends sep, tokenizes with BOS: processor.input_ids exactly', async () => {
    const out = await processor.process(goldens.processor.prompt, [image]);
    expect(out.inputIds).toEqual([goldens.processor.input_ids]);
    expect(out.attentionMask).toEqual([goldens.processor.attention_mask]);
    expect(out.imageDims).toEqual([1, 3, 64, 64]);
    expect(out.pixelValues).toBeInstanceOf(Float32Array);
    expect(out.pixelValues!.length).toBe(3 * 64 * 64);
  });

  it('text completion appends no sep: the text_completion_example exactly', async () => {
    const example = goldens.processor.text_completion_example;
    const out = await processor.process(example.text, [], { textCompletion: true });
    expect(out.inputIds).toEqual([example.input_ids]);
    expect(out.pixelValues).toBeUndefined();
    expect(out.imageDims[0]).toBe(0);
    // Chat mode: the image-only generation prompt is the same text + sep.
    expect((await processor.process(example.text)).inputIds).toEqual([goldens.generation.image_only.prompt_ids]);
  });

  it('pads a batch on the left with <pad> = 1 and masks it: the text-forward golden batch', async () => {
    const rows: number[][] = goldens.text_forward.input_ids;
    const mask: number[][] = goldens.text_forward.attention_mask;
    const texts = await processor.batchDecode(rows);
    const out = await processor.process(texts, [], { textCompletion: true });
    expect(out.inputIds).toEqual(rows);
    expect(out.attentionMask).toEqual(mask);
    expect(out.inputIds[1].slice(0, 3)).toEqual([1, 1, 1]);

    const right = await processor.process(texts, [], { textCompletion: true, paddingSide: 'right' });
    expect(right.inputIds[1]).toEqual([...rows[1].slice(3), 1, 1, 1]);
    expect(right.attentionMask[1]).toEqual([1, 1, 1, 1, 1, 0, 0, 0]);
    expect(right.inputIds[0]).toEqual(rows[0]);
  });

  it('takes images in marker order across a batch', async () => {
    const out = await processor.process(['<image> and <image>', 'only text'], [image, image]);
    expect(out.imageDims).toEqual([2, 3, 64, 64]);
    const plane = 3 * 64 * 64;
    expect(Array.from(out.pixelValues!.subarray(0, plane))).toEqual(Array.from(out.pixelValues!.subarray(plane)));
    const image8711 = out.inputIds[0].filter((id) => id === 8711).length;
    expect(image8711).toBe(2 * 16);
    expect(out.inputIds[1][0]).toBe(1); // the shorter row is left-padded
  });

  it('rejects a marker/image count mismatch with a clear error', async () => {
    await expect(processor.process('no marker here', [image])).rejects.toMatchObject({
      name: 'ImageInputError',
      code: 'IMAGE_COUNT_MISMATCH',
      message: 'the prompt has 0 <image> marker(s) but 1 image(s) were given',
    });
    await expect(processor.process(['<image>', '<image>'], [image])).rejects.toMatchObject({ code: 'IMAGE_COUNT_MISMATCH' });
  });

  it('postprocesses to PNG files', async () => {
    const { pixelValues, imageDims } = await processor.process('<image>', [image]);
    const [png] = await processor.postprocessToPng(pixelValues!, imageDims);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  });
});

describe('processor configuration files', () => {
  it('falls back to the HF class defaults when the files are absent', () => {
    const dir = tempDir({});
    expect(loadImageProcessorConfig(dir)).toEqual({
      doConvertRgb: true,
      doResize: true,
      size: { shortestEdge: 512 },
      resample: 1,
      doCenterCrop: true,
      cropSize: { height: 512, width: 512 },
      doRescale: true,
      rescaleFactor: 0.0078,
      doNormalize: true,
      imageMean: [1, 1, 1],
      imageStd: [1, 1, 1],
    });
    expect(loadProcessorConfig(dir)).toEqual({ imageSeqLength: 1024, imageToken: '<image>' });
    expect(loadProcessorConfig(A)).toEqual({ imageSeqLength: 16, imageToken: '<image>' });
  });

  it('accepts HF shorthands (int sizes, scalar mean) and names the file on bad values', () => {
    const dir = tempDir({ 'preprocessor_config.json': JSON.stringify({ size: 256, crop_size: 224, image_mean: 0.5, image_std: [0.5, 0.25, 2] }) });
    const config = loadImageProcessorConfig(dir);
    expect(config.size).toEqual({ shortestEdge: 256 });
    expect(config.cropSize).toEqual({ height: 224, width: 224 });
    expect(config.imageMean).toEqual([0.5, 0.5, 0.5]);
    expect(config.imageStd).toEqual([0.5, 0.25, 2]);
    const bad = tempDir({ 'preprocessor_config.json': JSON.stringify({ image_std: [1, 0, 1] }) });
    expect(() => loadImageProcessorConfig(bad)).toThrow(CheckpointError);
    expect(() => loadImageProcessorConfig(bad)).toThrow(/preprocessor_config\.json: image_std/);
    const badSeq = tempDir({ 'processor_config.json': '{"image_seq_length": 0}' });
    expect(() => loadProcessorConfig(badSeq)).toThrow(/processor_config\.json: image_seq_length must be a positive integer/);
  });

  it('pads rows with padBatch on either side', () => {
    expect(padBatch([[5], [6, 7, 8]], 1, 'left')).toEqual({ inputIds: [[1, 1, 5], [6, 7, 8]], attentionMask: [[0, 0, 1], [1, 1, 1]] });
    expect(padBatch([[5], [6, 7, 8]], 1, 'right')).toEqual({ inputIds: [[5, 1, 1], [6, 7, 8]], attentionMask: [[1, 0, 0], [1, 1, 1]] });
  });
});
