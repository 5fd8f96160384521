import ort from 'onnxruntime-node';
import type { AnoleConfig } from '../../model/config.ts';
import { cacheNames, type DecoderGraphOptions } from '../graphs/decoder.ts';
import { activationType } from '../graphs/precision.ts';
import { DataType } from '../onnx/graph-builder.ts';
import { createSession, type SessionConfig } from '../onnx/session.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import { asModelSource, type ModelSource } from './model-source.ts';

/** The KV cache after a forward, and the attention mask it was built with (so padding is remembered). */
export interface TextCache {
  keys: ort.Tensor[]; // per layer [B, Hkv, S, D]
  values: ort.Tensor[];
  attentionMask: number[][]; // [B, S]
}

export interface ForwardInput {
  inputIds: number[][]; // [B, T]
  /** [B, P + T]; default: the cache's mask followed by ones for the new tokens (all ones without a cache). */
  attentionMask?: number[][];
  /** [B, T]; default: `positionsFromMask`, as HF generate() derives them. */
  positionIds?: number[][];
  cache?: TextCache;
}

export interface ForwardOutput {
  logits: Float32Array;
  /** [B, T, V], or [B, 1, V] for a model loaded with logits 'last'. */
  dims: [number, number, number];
  cache: TextCache;
}

/**
 * HF generate()'s positions: cumsum(mask) - 1, pad positions set to 1, the last `newTokens`
 * columns. A left-padded row thus starts at position 0 at its first real token.
 */
export function positionsFromMask(attentionMask: number[][], newTokens: number): number[][] {
  return attentionMask.map((row) => {
    let seen = 0;
    const positions = row.map((m) => (m ? seen++ : 1));
    return positions.slice(positions.length - newTokens);
  });
}

/** The Anole text decoder in one ONNX Runtime session, one `run` per forward. */
export class TextModel {
  private constructor(
    readonly config: AnoleConfig,
    private readonly session: ort.InferenceSession,
    /** The KV cache's element type (float32, or float16 / bfloat16 in a GPU build). */
    readonly cacheType: 'float32' | 'float16' | 'bfloat16',
  ) {}

  /** From a checkpoint (graph built here) or a model source such as a bundle (graph prebuilt). */
  static async load(model: Checkpoint | ModelSource, opts: SessionConfig & Pick<DecoderGraphOptions, 'logits'> = {}): Promise<TextModel> {
    const source = asModelSource(model);
    const graph = source.graph(opts.logits === 'last' ? 'prefill' : 'decoder')!; // a bad checkpoint throws its CheckpointError here
    const session = await createSession(graph, opts);
    const type = activationType(source.precision);
    return new TextModel(source.checkpoint.config!, session, type === DataType.FLOAT16 ? 'float16' : type === DataType.BFLOAT16 ? 'bfloat16' : 'float32');
  }

  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const { numHiddenLayers: layers, numKeyValueHeads: heads, headDim } = this.config;
    const batch = input.inputIds.length;
    const fresh = input.inputIds[0]?.length ?? 0;
    if (batch === 0 || fresh === 0 || input.inputIds.some((row) => row.length !== fresh)) {
      throw new Error('inputIds must be a non-empty rectangle [batch, tokens]');
    }
    const past = input.cache ? input.cache.attentionMask[0].length : 0;
    if (input.cache && input.cache.attentionMask.length !== batch) {
      throw new Error(`the cache holds ${input.cache.attentionMask.length} rows but inputIds has ${batch}`);
    }
    const attentionMask = input.attentionMask ?? input.inputIds.map((row, b) => [...(input.cache?.attentionMask[b] ?? []), ...row.map(() => 1)]);
    if (attentionMask.length !== batch || attentionMask.some((row) => row.length !== past + fresh)) {
      throw new Error(`attentionMask must be [${batch}, ${past + fresh}] (cached + new tokens)`);
    }
    const positionIds = input.positionIds ?? positionsFromMask(attentionMask, fresh);
    if (positionIds.length !== batch || positionIds.some((row) => row.length !== fresh)) {
      throw new Error(`positionIds must be [${batch}, ${fresh}]`);
    }
    // the context length is the model's: beyond it positions were never trained (and dynamic
    // rope_scaling would need a different base, which this graph does not compute)
    const maxPosition = Math.max(...positionIds.flat());
    if (maxPosition >= this.config.maxPositionEmbeddings) {
      throw new Error(`position ${maxPosition} is beyond the context length (max_position_embeddings ${this.config.maxPositionEmbeddings})`);
    }

    const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);
    const emptyCache = () =>
      this.cacheType === 'float32'
        ? new ort.Tensor('float32', new Float32Array(0), [batch, heads, 0, headDim])
        : new ort.Tensor(this.cacheType as 'float16', new Uint16Array(0), [batch, heads, 0, headDim]);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(input.inputIds),
      attention_mask: int64(attentionMask),
      position_ids: int64(positionIds),
    };
    for (let i = 0; i < layers; i++) {
      const n = cacheNames(i);
      feeds[n.pastKey] = input.cache?.keys[i] ?? emptyCache();
      feeds[n.pastValue] = input.cache?.values[i] ?? emptyCache();
    }
    const out = await this.session.run(feeds);
    const names = Array.from({ length: layers }, (_, i) => cacheNames(i));
    const [b, t, v] = out.logits.dims;
    return {
      logits: out.logits.data as Float32Array,
      dims: [b, t, v],
      cache: { keys: names.map((n) => out[n.presentKey]), values: names.map((n) => out[n.presentValue]), attentionMask },
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
