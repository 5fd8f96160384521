import ort from 'onnxruntime-node';
import type { VQConfig } from '../../model/config.ts';
import { imageVocabulary, type ImageVocabulary } from '../../model/vocabulary.ts';
import type { BuiltModel } from '../onnx/graph-builder.ts';
import { createSession, type SessionConfig } from '../onnx/session.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import { asModelSource, type ModelSource } from './model-source.ts';

export interface EncodeResult {
  /** Per image, h·w codebook indices in raster order (token t ↔ row t / w, column t % w). */
  codes: Int32Array[];
  /** quant_conv output before quantisation, [B, embed_dim, h, w]. */
  latent: Float32Array;
}

/**
 * Images ↔ VQ codes ↔ image token ids with the checkpoint's VQ-VAE. Both graphs are built at load,
 * so a missing or wrong-shaped VQ tensor fails there with a CheckpointError; each direction's
 * ONNX Runtime session (which reads the weights) is created on first use, so a decode-only
 * caller never loads the encoder.
 */
export class ImageCodec {
  readonly vq: VQConfig;
  /** Codes per image: h·w of the latent grid (1024 for the real 512×512 model). */
  readonly imageSeqLength: number;
  private readonly vocabulary: ImageVocabulary | undefined;
  private readonly graphs: Record<'encoder' | 'decoder', BuiltModel>;
  private readonly sessions: Partial<Record<'encoder' | 'decoder', Promise<ort.InferenceSession>>> = {};
  private readonly sessionConfig: SessionConfig;

  private constructor(source: ModelSource, sessionConfig: SessionConfig) {
    const ckpt = source.checkpoint;
    this.vq = ckpt.vq;
    this.imageSeqLength = ckpt.vq.quantStateDims[0] * ckpt.vq.quantStateDims[1];
    // A standalone AnoleVQVAE checkpoint has no text vocabulary, hence no token ids.
    this.vocabulary = ckpt.config ? imageVocabulary(ckpt.config) : undefined;
    this.graphs = { encoder: source.graph('vq-encoder')!, decoder: source.graph('vq-decoder')! };
    this.sessionConfig = sessionConfig;
  }

  /** From a checkpoint (graphs built here) or a model source such as a bundle (graphs prebuilt). */
  static async load(model: Checkpoint | ModelSource, opts: SessionConfig = {}): Promise<ImageCodec> {
    return new ImageCodec(asModelSource(model), opts);
  }

  /** pixelValues: [batch, in_channels, R, R] float32, as the image processor makes them. */
  async encode(pixelValues: Float32Array, batch: number): Promise<EncodeResult> {
    const { inChannels, resolution: R, embedDim } = this.vq;
    const [h, w] = this.vq.quantStateDims;
    if (!Number.isInteger(batch) || batch < 1 || pixelValues.length !== batch * inChannels * R * R) {
      throw new RangeError(`encode: expected ${batch}×${inChannels}×${R}×${R} pixel values, got ${pixelValues.length}`);
    }
    const session = await this.session('encoder');
    const out = await session.run({ pixel_values: new ort.Tensor('float32', pixelValues, [batch, inChannels, R, R]) });
    const flat = out.codes.data as BigInt64Array; // [B, h·w]
    const n = this.imageSeqLength;
    const codes = Array.from({ length: batch }, (_, b) => Int32Array.from(flat.subarray(b * n, (b + 1) * n), Number));
    const latent = out.latent.data as Float32Array;
    if (latent.length !== batch * embedDim * h * w) throw new Error(`encoder returned ${latent.length} latent values`);
    return { codes, latent };
  }

  /** codes: per image h·w codebook indices (raster order) → pixel values [B, out_channels, R, R]. */
  async decode(codes: ArrayLike<number>[]): Promise<Float32Array> {
    const n = this.imageSeqLength;
    if (codes.length === 0) throw new RangeError('decode: no images');
    const flat = new BigInt64Array(codes.length * n);
    codes.forEach((row, b) => {
      if (row.length !== n) throw new RangeError(`decode: image ${b} has ${row.length} codes, expected ${n}`);
      for (let t = 0; t < n; t++) {
        const code = row[t];
        if (!Number.isInteger(code) || code < 0 || code >= this.vq.numEmbeddings) {
          throw new RangeError(`decode: image ${b} position ${t}: ${code} is not a code in [0, ${this.vq.numEmbeddings})`);
        }
        flat[b * n + t] = BigInt(code);
      }
    });
    const session = await this.session('decoder');
    const out = await session.run({ codes: new ort.Tensor('int64', flat, [codes.length, n]) });
    return out.pixel_values.data as Float32Array;
  }

  /** Codes → the token ids the language model reads and writes (img2bpe). */
  codesToTokens(codes: ArrayLike<number>): Int32Array {
    const vocab = this.requireVocabulary();
    return Int32Array.from(codes, (code) => {
      if (!Number.isInteger(code) || code < 0 || code >= vocab.codeToToken.length) throw new RangeError(`${code} is not a VQ code`);
      return vocab.codeToToken[code];
    });
  }

  /**
   * Token ids → codes (bpe2img). Unlike HF, whose zero-filled table silently turns any non-image
   * id into code 0, a non-image id is an error naming its position.
   */
  tokensToCodes(tokenIds: ArrayLike<number>): Int32Array {
    const vocab = this.requireVocabulary();
    return Int32Array.from(tokenIds, (id, t) => {
      const code = Number.isInteger(id) && id >= 0 && id < vocab.tokenToCode.length ? vocab.tokenToCode[id] : -1;
      if (code < 0) throw new RangeError(`token ${id} at position ${t} is not an image token (image ids are ${vocab.firstId}..${vocab.lastId})`);
      return code;
    });
  }

  async encodeTokens(pixelValues: Float32Array, batch: number): Promise<Int32Array[]> {
    const { codes } = await this.encode(pixelValues, batch);
    return codes.map((row) => this.codesToTokens(row));
  }

  /** HF decode_image_tokens: per image h·w image token ids → pixel values [B, out_channels, R, R]. */
  async decodeTokens(tokenIds: ArrayLike<number>[]): Promise<Float32Array> {
    return this.decode(tokenIds.map((row) => this.tokensToCodes(row)));
  }

  async release(): Promise<void> {
    for (const key of ['encoder', 'decoder'] as const) {
      const session = this.sessions[key];
      delete this.sessions[key];
      if (session) await (await session).release();
    }
  }

  private session(direction: 'encoder' | 'decoder'): Promise<ort.InferenceSession> {
    let session = this.sessions[direction];
    if (!session) {
      session = createSession(this.graphs[direction], this.sessionConfig);
      // A failed creation is not cached: the next call retries.
      session.catch(() => delete this.sessions[direction]);
      this.sessions[direction] = session;
    }
    return session;
  }

  private requireVocabulary(): ImageVocabulary {
    if (!this.vocabulary) throw new Error('this is a standalone VQ-VAE checkpoint: it has no token vocabulary, use codes');
    return this.vocabulary;
  }
}
