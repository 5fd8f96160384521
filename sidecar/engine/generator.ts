import ort from 'onnxruntime-node';
import type { AnoleConfig } from '../../model/config.ts';
import { imageVocabulary } from '../../model/vocabulary.ts';
import { cacheNames } from '../graphs/decoder.ts';
import { imageTokenRange, LOOP_INPUTS as I, LOOP_OUTPUTS as O, outputName } from '../graphs/generation-loop.ts';
import { PHASE } from '../graphs/generator-graph.ts';
import { activationType } from '../graphs/precision.ts';
import { DataType } from '../onnx/graph-builder.ts';
import { createSession, type SessionConfig } from '../onnx/session.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import { leftPad } from './greedy-generate.ts';
import { asModelSource, type ModelSource } from './model-source.ts';
import { appendRows, emptyBatch, selectRows, type RowBatch } from './row-batch.ts';
import { positionsFromMask } from './text-model.ts';
import { acceptToken, finishSequence, rowPrompts, startSequence, type GenerationEvent, type RowRole, type Sequence } from './sequence.ts';

export type { FinishReason, GenerationEvent } from './sequence.ts';

export interface GenerateOptions {
  /** Loop engine: tokens per session.run; engine v2: steps per delivery of events. Default one row of the image grid; 1 gives the per-token baseline. */
  chunkSize?: number;
  /** Cancels every sequence at the next chunk boundary. */
  signal?: AbortSignal;
}

/** Host↔runtime traffic, to compare the in-graph loop with a run per token. */
export interface TransferStats {
  runs: number;
  /** Of `runs`, the chunks on the image-head loop. */
  imageHeadRuns: number;
  bytesIn: number;
  bytesOut: number;
  tokens: number;
  /** Engine v2: times its decode runs were bound (once per generate call: shapes and addresses then stay). */
  bindings: number;
  /** Engine v2: decoder steps run on chosen tokens (a token is handed out before its step). */
  steps: number;
}

/**
 * Runs generation requests as one batch whose token loop lives inside ONNX Runtime
 * (graphs/generation-loop.ts). Between chunks, this class only moves rows in and out:
 * guidance streams at boi / eoi, finished sequences, canceled ones.
 */
export class Generator {
  readonly stats: TransferStats = { runs: 0, imageHeadRuns: 0, bytesIn: 0, bytesOut: 0, tokens: 0, bindings: 0, steps: 0 };
  private readonly imageIds: Set<number>;
  private readonly codeOf: Int32Array;

  private constructor(
    readonly config: AnoleConfig,
    /** The generator graph (generator-graph.ts): prefill and both chunk loops, one copy of the weights. */
    private readonly session: ort.InferenceSession,
    /** The image-head loop's lm-head columns, for chunks in which every sequence is drawing an image. */
    private readonly imageColumns: [number, number] | undefined,
    /** The KV cache's element type (float32, or float16 / bfloat16 in a GPU build). */
    private readonly cacheType: 'float32' | 'float16' | 'bfloat16',
  ) {
    const vocab = imageVocabulary(config);
    this.imageIds = new Set(vocab.codeToToken);
    this.codeOf = vocab.tokenToCode;
  }

  /** From a checkpoint (graphs built here) or a model source such as a bundle (graphs prebuilt). */
  static async load(model: Checkpoint | ModelSource, opts: SessionConfig & { imageHead?: boolean } = {}): Promise<Generator> {
    const source = asModelSource(model);
    const graph = source.graph('generator')!; // a bad checkpoint throws its CheckpointError here
    const config = source.checkpoint.config!;
    const columns = imageTokenRange(imageVocabulary(config).codeToToken);
    const type = activationType(source.precision);
    const cacheType = type === DataType.FLOAT16 ? 'float16' : type === DataType.BFLOAT16 ? 'bfloat16' : 'float32';
    return new Generator(config, await createSession(graph, opts), (opts.imageHead ?? true) ? columns : undefined, cacheType);
  }

  /** Generates every request; yields events as chunks complete. */
  async *generate(requests: SequenceRequest[], opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    const c = this.config;
    const chunkSize = opts.chunkSize ?? c.vq.quantStateDims[1];
    if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`);
    if (requests.length === 0) return; // nothing to prefill (an empty batch is not an error)
    const sequences = requests.map((r, i) => startSequence(c, r, i));
    const events: GenerationEvent[] = [];
    let chunks = 0;

    // first rows: every prompt, plus the guidance rows of sequences that start inside an image
    let owners: { seq: Sequence; role: RowRole }[] = [];
    let batch = emptyBatch(c.numHiddenLayers, c.hiddenSize, c.numKeyValueHeads, c.headDim, this.cacheType !== 'float32');
    const initial = sequences.flatMap((s) => rowPrompts(c, this.imageIds, s, s.hasGuidanceRows ? ['full', 'image', 'uncond'] : ['full']));
    batch = appendRows(batch, await this.prefillRows(initial.map((r) => r.prompt)));
    owners = initial.map(({ seq, role }) => ({ seq, role }));
    for (const s of sequences) if (s.imageCount === 0) events.push({ type: 'image_start', sequence: s.index });
    yield* events.splice(0);

    while (sequences.some((s) => !s.done)) {
      for (const s of sequences) {
        if (!s.done && (opts.signal?.aborted || s.request.signal?.aborted)) finishSequence(s, 'canceled', events);
      }
      ({ batch, owners } = this.dropRows(batch, owners, (o) => !o.seq.done));
      yield* events.splice(0);
      if (batch.rows === 0) break;

      const active = [...new Set(owners.map((o) => o.seq))];
      // The first chunk is one token: a client sees the first token after one step, not after K.
      const out = await this.runChunk(batch, owners, active, chunks++ === 0 ? 1 : chunkSize);
      batch = out.batch;

      // replay the chunk's tokens per sequence (the graph ran the same state machine)
      const steps = out.tokens.length / active.length;
      active.forEach((s, g) => {
        let used = 0;
        for (let t = 0; t < steps && !s.done; t++) {
          used++;
          acceptToken(c, this.codeOf, s, Number(out.tokens[t * active.length + g]), events);
        }
        s.uniforms.consume(used);
        s.seen = out.seen.subarray(g * c.vocabSize, (g + 1) * c.vocabSize).slice();
        s.counts = out.counts.subarray(g * c.vocabSize, (g + 1) * c.vocabSize).slice();
      });

      // guidance rows: added when a guided sequence opens an image, dropped when it leaves it
      ({ batch, owners } = this.dropRows(batch, owners, (o) => !o.seq.done && (o.role === 'full' || o.seq.imageCount >= 0)));
      for (const s of active) if (s.hasGuidanceRows && s.imageCount < 0) s.hasGuidanceRows = false;
      const opening = active.filter((s) => s.guided && !s.done && s.imageCount === 0 && !s.hasGuidanceRows);
      if (opening.length) {
        const rows = opening.flatMap((s) => rowPrompts(c, this.imageIds, s, ['image', 'uncond']));
        batch = appendRows(batch, await this.prefillRows(rows.map((r) => r.prompt)));
        owners = [...owners, ...rows.map(({ seq, role }) => ({ seq, role }))];
        for (const s of opening) s.hasGuidanceRows = true;
      }
      yield* events.splice(0);
    }
    yield* events.splice(0);
  }

  private async prefillRows(prompts: number[][]): Promise<RowBatch> {
    const c = this.config;
    const padded = leftPad(prompts, c.padTokenId);
    const B = prompts.length;
    const S = padded.attentionMask[0].length;
    const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);
    const feeds = this.idleFeeds(PHASE.prefill);
    feeds.input_ids = int64(padded.inputIds);
    feeds[I.attentionMask] = int64(padded.attentionMask);
    feeds[I.positionIds] = int64(positionsFromMask(padded.attentionMask, S));
    const empty = this.cacheType === 'float32' ? new Float32Array(0) : new Uint16Array(0);
    for (let l = 0; l < c.numHiddenLayers; l++) {
      feeds[cacheNames(l).pastKey] = cacheTensor(this.cacheType, empty, [B, c.numKeyValueHeads, 0, c.headDim]);
      feeds[cacheNames(l).pastValue] = cacheTensor(this.cacheType, empty, [B, c.numKeyValueHeads, 0, c.headDim]);
    }
    const out = await this.session.run(feeds);
    this.stats.runs++;
    return {
      rows: B,
      length: S,
      hiddenSize: c.hiddenSize,
      heads: c.numKeyValueHeads,
      headDim: c.headDim,
      hidden: out[O.hidden].data as Float32Array | Uint16Array,
      mask: BigInt64Array.from(padded.attentionMask.flat(), BigInt),
      positions: BigInt64Array.from(prompts.map((p) => BigInt(p.length))),
      keys: Array.from({ length: c.numHiddenLayers }, (_, l) => out[outputName(cacheNames(l).pastKey)].data as Float32Array | Uint16Array),
      values: Array.from({ length: c.numHiddenLayers }, (_, l) => out[outputName(cacheNames(l).pastValue)].data as Float32Array | Uint16Array),
    };
  }

  /**
   * Feeds of every generator-graph input, empty, and the phase: the graph takes all of them on every
   * run, and the branch a phase does not take never reads them.
   */
  private idleFeeds(phase: number): Record<string, ort.Tensor> {
    const c = this.config;
    const V = c.vocabSize;
    const i64 = (dims: number[]) => new ort.Tensor('int64', new BigInt64Array(0), dims);
    const f32 = (dims: number[]) => new ort.Tensor('float32', new Float32Array(0), dims);
    const bool = (dims: number[]) => new ort.Tensor('bool', new Uint8Array(0), dims);
    const empty = this.cacheType === 'float32' ? new Float32Array(0) : new Uint16Array(0);
    const feeds: Record<string, ort.Tensor> = {
      phase: new ort.Tensor('int64', BigInt64Array.from([BigInt(phase)]), []),
      input_ids: i64([0, 0]),
      [I.steps]: new ort.Tensor('int64', BigInt64Array.from([0n]), []),
      [I.uniforms]: f32([0, 0]),
      [I.hidden]: cacheTensor(this.cacheType, empty, [0, 1, c.hiddenSize]),
      [I.attentionMask]: i64([0, 0]),
      [I.positionIds]: i64([0, 0]),
      [I.imageCount]: i64([0]),
      [I.done]: bool([0]),
      [I.remaining]: i64([0]),
      [I.seen]: bool([0, V]),
      [I.counts]: f32([0, V]),
      [I.rowGroup]: i64([0]),
      [I.rowFull]: i64([0]),
      [I.rowImage]: i64([0]),
      [I.rowUncond]: i64([0]),
      [I.guided]: bool([0]),
      [I.scaleImage]: f32([0]),
      [I.scaleText]: f32([0]),
      [I.textAllowed]: bool([0, V]),
      [I.allowBoi]: bool([0]),
      [I.stopAfterImage]: bool([0]),
      [I.temperature]: f32([0, 2]),
      [I.topP]: f32([0, 2]),
      [I.topK]: i64([0, 2]),
      [I.greedy]: bool([0, 2]),
      [I.penalty]: f32([0]),
      [I.presence]: f32([0]),
      [I.frequency]: f32([0]),
      [I.bias]: f32([0, 0]),
    };
    for (let l = 0; l < c.numHiddenLayers; l++) {
      feeds[cacheNames(l).pastKey] = cacheTensor(this.cacheType, empty, [0, c.numKeyValueHeads, 0, c.headDim]);
      feeds[cacheNames(l).pastValue] = cacheTensor(this.cacheType, empty, [0, c.numKeyValueHeads, 0, c.headDim]);
    }
    return feeds;
  }

  private dropRows(batch: RowBatch, owners: { seq: Sequence; role: RowRole }[], keep: (o: { seq: Sequence; role: RowRole }) => boolean) {
    const kept = owners.map((o, r) => (keep(o) ? r : -1)).filter((r) => r >= 0);
    if (kept.length === owners.length) return { batch, owners };
    return { batch: selectRows(batch, kept), owners: kept.map((r) => owners[r]) };
  }

  private async runChunk(batch: RowBatch, owners: { seq: Sequence; role: RowRole }[], active: Sequence[], maxSteps: number) {
    const c = this.config;
    const V = c.vocabSize;
    const N = c.imageSeqLength;
    const R = batch.rows;
    const G = active.length;
    // Every sequence inside an image: the image-head loop, for as many steps as no image completes.
    const drawing = this.imageColumns !== undefined && active.every((s) => s.imageCount >= 0 && s.imageCount < N);
    const [first, end] = drawing ? this.imageColumns! : [0, V];
    const W = end - first;
    const steps = drawing ? Math.min(maxSteps, ...active.map((s) => N - s.imageCount)) : maxSteps;

    const groupOf = new Map(active.map((s, g) => [s, g]));
    const rowOf = (s: Sequence, role: RowRole) => owners.findIndex((o) => o.seq === s && o.role === role);
    const i64 = (values: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
    const f32 = (values: ArrayLike<number>, dims: number[]) => new ort.Tensor('float32', Float32Array.from(values), dims);
    const bool = (values: ArrayLike<number | boolean>, dims: number[]) => new ort.Tensor('bool', Uint8Array.from(values, Number), dims);
    /** One row per group of the given columns. */
    const perGroup = <T extends Uint8Array | Float32Array>(pick: (s: Sequence) => T, out: T, from = 0, to = V) => {
      active.forEach((s, g) => out.set(pick(s).subarray(from, to), g * (to - from)));
      return out;
    };
    const settings = (s: Sequence) => [s.request.text, s.request.image];

    const feeds: Record<string, ort.Tensor> = {
      ...this.idleFeeds(drawing ? PHASE.loopImage : PHASE.loopFull),
      [I.steps]: new ort.Tensor('int64', BigInt64Array.from([BigInt(steps)]), []),
      [I.uniforms]: f32(transpose(active.map((s) => s.uniforms.peek(steps))).flat(), [steps, G]),
      [I.hidden]: cacheTensor(this.cacheType, batch.hidden, [R, 1, batch.hiddenSize]),
      [I.attentionMask]: new ort.Tensor('int64', batch.mask, [R, batch.length]),
      [I.positionIds]: new ort.Tensor('int64', batch.positions, [R, 1]),
      [I.imageCount]: i64(active.map((s) => s.imageCount), [G]),
      [I.done]: bool(active.map(() => 0), [G]),
      [I.remaining]: i64(active.map((s) => s.remaining), [G]),
      [I.seen]: new ort.Tensor('bool', perGroup((s) => s.seen, new Uint8Array(G * V)), [G, V]),
      [I.counts]: new ort.Tensor('float32', perGroup((s) => s.counts, new Float32Array(G * V)), [G, V]),
      [I.rowGroup]: i64(owners.map((o) => groupOf.get(o.seq)!), [R]),
      [I.rowFull]: i64(active.map((s) => rowOf(s, 'full')), [G]),
      [I.rowImage]: i64(active.map((s) => (s.hasGuidanceRows ? rowOf(s, 'image') : rowOf(s, 'full'))), [G]),
      [I.rowUncond]: i64(active.map((s) => (s.hasGuidanceRows ? rowOf(s, 'uncond') : rowOf(s, 'full'))), [G]),
      [I.guided]: bool(active.map((s) => s.guided), [G]),
      [I.scaleImage]: f32(active.map((s) => s.request.guidance.image), [G]),
      [I.scaleText]: f32(active.map((s) => s.request.guidance.text), [G]),
      [I.allowBoi]: bool(active.map((s) => s.request.constraints.allowBoi), [G]),
      [I.stopAfterImage]: bool(active.map((s) => s.request.constraints.stopAfterImage), [G]),
      [I.temperature]: f32(active.flatMap((s) => settings(s).map((x) => x.temperature)), [G, 2]),
      [I.topP]: f32(active.flatMap((s) => settings(s).map((x) => x.topP)), [G, 2]),
      [I.topK]: i64(active.flatMap((s) => settings(s).map((x) => x.topK)), [G, 2]),
      [I.greedy]: bool(active.flatMap((s) => settings(s).map((x) => x.greedy)), [G, 2]),
      [I.penalty]: f32(active.map((s) => s.request.repetitionPenalty), [G]),
      [I.presence]: f32(active.map((s) => s.request.presencePenalty ?? 0), [G]),
      [I.frequency]: f32(active.map((s) => s.request.frequencyPenalty ?? 0), [G]),
      [I.bias]: new ort.Tensor('float32', perGroup((s) => s.bias, new Float32Array(G * W), first, end), [G, W]),
    };
    if (!drawing) feeds[I.textAllowed] = new ort.Tensor('bool', perGroup((s) => s.textAllowed, new Uint8Array(G * V)), [G, V]);
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const dims = [R, batch.heads, batch.length, batch.headDim];
      feeds[cacheNames(l).pastKey] = cacheTensor(this.cacheType, batch.keys[l], dims);
      feeds[cacheNames(l).pastValue] = cacheTensor(this.cacheType, batch.values[l], dims);
    }
    const out = await this.session.run(feeds);
    this.stats.runs++;
    if (drawing) this.stats.imageHeadRuns++;
    for (const t of Object.values(feeds)) this.stats.bytesIn += (t.data as ArrayBufferView).byteLength;
    for (const t of Object.values(out)) this.stats.bytesOut += (t.data as ArrayBufferView).byteLength;
    const tokens = out[O.tokens].data as BigInt64Array;
    this.stats.tokens += tokens.length;

    const nextMask = out[O.attentionMask];
    const next: RowBatch = {
      ...batch,
      length: nextMask.dims[1],
      hidden: out[O.hidden].data as Float32Array | Uint16Array,
      mask: nextMask.data as BigInt64Array,
      positions: out[O.positionIds].data as BigInt64Array,
      keys: Array.from({ length: c.numHiddenLayers }, (_, l) => out[outputName(cacheNames(l).pastKey)].data as Float32Array | Uint16Array),
      values: Array.from({ length: c.numHiddenLayers }, (_, l) => out[outputName(cacheNames(l).pastValue)].data as Float32Array | Uint16Array),
    };
    return { batch: next, tokens, seen: out[O.seen].data as Uint8Array, counts: out[O.counts].data as Float32Array };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A KV-cache tensor: float32, or float16 / bfloat16 bits (a GPU build's cache). */
function cacheTensor(type: 'float32' | 'float16' | 'bfloat16', data: Float32Array | Uint16Array, dims: number[]): ort.Tensor {
  return type === 'float32' ? new ort.Tensor('float32', data as Float32Array, dims) : new ort.Tensor(type as 'float16', data as Uint16Array, dims);
}

/** [G][K] → [K][G] */
function transpose(rows: number[][]): number[][] {
  return rows[0].map((_, t) => rows.map((row) => row[t]));
}
