import {
  ImageInputError,
  postprocess,
  encodePng,
  preprocessImages,
  DEFAULT_LIMIT_INPUT_PIXELS,
  type RgbImage,
} from './image-processor.ts';
import { loadImageProcessorConfig, loadProcessorConfig, type ImageProcessorConfig, type ProcessorConfig } from './preprocessor-config.ts';
import { AnoleTokenizer } from './tokenizer.ts';

/**
 * AnoleProcessor (= ChameleonProcessor + postprocess, processing_anole.py @241464): prompts with
 * `<image>` markers and images in, padded token ids and pixel values out.
 *
 *   "…<image>…"  →  "…<racm3:break>" + "<image>"×image_seq_length + "<eoss>…" [+ "<reserved08706>"]
 *                →  [BOS, ids…]  → padded to the longest row (left by default)
 *
 * The `<image>` ids stay placeholders: the model replaces them with the VQ tokens of the
 * matching image (the Anole forward has no pixel_values argument).
 */

export interface ProcessOptions {
  /** HF return_for_text_completion: do not append the sep (end-of-turn) token. */
  textCompletion?: boolean;
  /** Which side pad tokens go on; left (the default) keeps every prompt's last token aligned for generation. */
  paddingSide?: 'left' | 'right';
}

export interface ProcessorOutput {
  /** [B][L], rows padded with the pad id to the longest row. */
  inputIds: number[][];
  /** [B][L], 1 for real tokens, 0 for padding. */
  attentionMask: number[][];
  /** [N,3,H,W] float32, images in the order of their `<image>` markers across the batch. */
  pixelValues?: Float32Array;
  /** [N,3,H,W]; N = 0 when there are no images. */
  imageDims: [number, number, number, number];
}

export interface AnoleProcessorOptions {
  limitInputPixels?: number;
}

export class AnoleProcessor {
  readonly tokenizer: AnoleTokenizer;
  readonly imageConfig: ImageProcessorConfig;
  readonly config: ProcessorConfig;
  private readonly limitInputPixels: number;

  constructor(tokenizer: AnoleTokenizer, imageConfig: ImageProcessorConfig, config: ProcessorConfig, options: AnoleProcessorOptions = {}) {
    this.tokenizer = tokenizer;
    this.imageConfig = imageConfig;
    this.config = config;
    this.limitInputPixels = options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  }

  /** tokenizer.json, tokenizer_config.json / special_tokens_map.json, preprocessor_config.json, processor_config.json from a checkpoint directory. */
  static async load(dir: string, options: AnoleProcessorOptions = {}): Promise<AnoleProcessor> {
    return new AnoleProcessor(await AnoleTokenizer.load(dir), loadImageProcessorConfig(dir), loadProcessorConfig(dir), options);
  }

  /** One prompt string as the tokenizer sees it: image markers expanded, sep appended unless text completion. */
  expandPrompt(text: string, textCompletion = false): string {
    const { boi, eoi, sep } = this.tokenizer.specialTokens;
    const { imageToken, imageSeqLength } = this.config;
    const oneImage = boi + imageToken.repeat(imageSeqLength) + eoi;
    const expanded = text.split(imageToken).join(oneImage);
    return textCompletion ? expanded : expanded + sep;
  }

  async process(text: string | string[], images: Uint8Array[] = [], options: ProcessOptions = {}): Promise<ProcessorOutput> {
    const texts = typeof text === 'string' ? [text] : text;
    if (texts.length === 0) throw new Error('process needs at least one prompt');
    const markers = texts.reduce((n, t) => n + (t.split(this.config.imageToken).length - 1), 0);
    if (markers !== images.length) {
      throw new ImageInputError(
        'IMAGE_COUNT_MISMATCH',
        `the prompt${texts.length > 1 ? 's have' : ' has'} ${markers} ${this.config.imageToken} marker(s) but ${images.length} image(s) were given`,
      );
    }
    const ids = await this.tokenizer.encodeBatch(texts.map((t) => this.expandPrompt(t, options.textCompletion)));
    const { inputIds, attentionMask } = padBatch(ids, this.tokenizer.specialIds.pad, options.paddingSide ?? 'left');
    const { cropSize } = this.imageConfig;
    if (images.length === 0) return { inputIds, attentionMask, imageDims: [0, 3, cropSize.height, cropSize.width] };
    const { pixelValues, dims } = await preprocessImages(images, this.imageConfig, { limitInputPixels: this.limitInputPixels });
    return { inputIds, attentionMask, pixelValues, imageDims: dims };
  }

  /** Decoded pixel values [N,3,H,W] → uint8 images. */
  postprocess(pixelValues: Float32Array, dims: readonly number[]): RgbImage[] {
    return postprocess(pixelValues, dims, this.imageConfig);
  }

  /** Decoded pixel values [N,3,H,W] → PNG files. */
  async postprocessToPng(pixelValues: Float32Array, dims: readonly number[]): Promise<Buffer[]> {
    return Promise.all(this.postprocess(pixelValues, dims).map(encodePng));
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): Promise<string> {
    return this.tokenizer.decode(ids, options);
  }

  batchDecode(ids: number[][], options: { skipSpecialTokens?: boolean } = {}): Promise<string[]> {
    return this.tokenizer.batchDecode(ids, options);
  }
}

/** Pads every row to the longest with `padId` on the given side; mask 0 marks padding. */
export function padBatch(rows: number[][], padId: number, side: 'left' | 'right'): { inputIds: number[][]; attentionMask: number[][] } {
  const length = Math.max(...rows.map((r) => r.length));
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const row of rows) {
    const pad = new Array<number>(length - row.length).fill(padId);
    const zeros = new Array<number>(length - row.length).fill(0);
    const ones = new Array<number>(row.length).fill(1);
    inputIds.push(side === 'left' ? [...pad, ...row] : [...row, ...pad]);
    attentionMask.push(side === 'left' ? [...zeros, ...ones] : [...ones, ...zeros]);
  }
  return { inputIds, attentionMask };
}
