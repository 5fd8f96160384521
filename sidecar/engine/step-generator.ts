import { setImmediate } from 'node:timers/promises';
import type { AnoleConfig } from '../../model/config.ts';
import { imageVocabulary } from '../../model/vocabulary.ts';
import { cacheNames } from '../graphs/decoder.ts';
import { imageTokenRange, LOOP_INPUTS as I, type LoopHead } from '../graphs/generation-loop.ts';
import { HEAD_INPUTS as H, HEAD_OUTPUTS } from '../graphs/head-graph.ts';
import { activationType } from '../graphs/precision.ts';
import { cacheHeadDim, STEP_HIDDEN, STEP_INPUTS } from '../graphs/step-decoder.ts';
import { DataType, type BuiltModel } from '../onnx/graph-builder.ts';
import { IoBinding, Session, Value } from '../ort-capi/index.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import type { SequenceRequest } from './generation-request.ts';
import type { GenerateOptions, TransferStats } from './generator.ts';
import { asModelSource, type ModelSource } from './model-source.ts';
import { acceptToken, finishSequence, rowPrompts, startSequence, type GenerationEvent, type RowRole, type Sequence } from './sequence.ts';

/**
 * Engine v2 (docs/engine-v2.md): the KV cache never leaves ONNX Runtime. Each row of the batch
 * owns a slot of one preallocated cache per layer, [rows, Hkv, context, D], which the step graph
 * updates in place; a step is two runs through ONNX Runtime's C API (sidecar/ort-capi):
 *
 *   head   rows' last hidden states → one token per group (and each row's next input id)
 *   step   those ids → every layer's cache row written in place → the next hidden states
 *
 * All inputs and outputs are bound once per batch shape (IoBinding); between runs JavaScript
 * writes a few numbers per group (state, a uniform, each row's length) and reads one token per
 * group. Rows change (a sequence finishes, guidance rows join or leave an image) only between
 * steps: the cache rows are compacted and new rows prefilled into free slots.
 *
 * On the CPU every buffer is JavaScript memory that ONNX Runtime reads and writes in place.
 */
export class StepGenerator {
  readonly stats: TransferStats = { runs: 0, imageHeadRuns: 0, bytesIn: 0, bytesOut: 0, tokens: 0 };
  private readonly imageIds: Set<number>;
  private readonly codeOf: Int32Array;
  private readonly imageColumns: [number, number] | undefined;

  private constructor(
    readonly config: AnoleConfig,
    private readonly step: Session,
    private readonly heads: { full: Session; image?: Session },
  ) {
    const vocab = imageVocabulary(config);
    this.imageIds = new Set(vocab.codeToToken);
    this.codeOf = vocab.tokenToCode;
    this.imageColumns = heads.image ? imageTokenRange(vocab.codeToToken) : undefined;
  }

  static async load(model: Checkpoint | ModelSource, opts: { intraOpNumThreads?: number; imageHead?: boolean } = {}): Promise<StepGenerator> {
    const source = asModelSource(model);
    const step = source.graph('step'); // a bad checkpoint throws its CheckpointError here
    const config = source.checkpoint.config!;
    if (!step) throw new Error(`${source.dir}: engine v2 has no graphs for --target ${source.precision.target} --dtype ${source.precision.dtype} (GroupQueryAttention runs fp16 / bf16 on CUDA)`);
    if (activationType(source.precision) !== DataType.FLOAT) throw new Error('engine v2 binds float32 activations so far (docs/engine-v2.md)');
    const open = (graph: BuiltModel) => Session.fromBytes(graph.bytes, { intraOpThreads: opts.intraOpNumThreads, externalDataDir: graph.externalDir });
    const image = (opts.imageHead ?? true) ? source.graph('head-image') : undefined;
    return new StepGenerator(config, open(step), { full: open(source.graph('head-full')!), image: image && open(image) });
  }

  async *generate(requests: SequenceRequest[], opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    if (requests.length === 0) return;
    const c = this.config;
    const sequences = requests.map((r, i) => startSequence(c, r, i));
    const slots = sequences.reduce((n, s) => n + (s.guided ? 3 : 1), 0);
    const context = Math.max(...sequences.map((s) => s.request.promptIds.length + s.request.maxNewTokens)) + 1;
    const batch = new Batch(this, c, slots, context);
    const events: GenerationEvent[] = [];
    const chunkSize = opts.chunkSize ?? c.vq.quantStateDims[1];
    if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`);
    let [steps, stepsSinceFlush] = [0, 0];
    let lastTurn = performance.now();
    try {
      for (const s of sequences) {
        batch.addRows(rowPrompts(c, this.imageIds, s, s.hasGuidanceRows ? ['full', 'image', 'uncond'] : ['full']));
        if (s.imageCount === 0) events.push({ type: 'image_start', sequence: s.index });
      }
      yield* events.splice(0);
      while (sequences.some((s) => !s.done)) {
        for (const s of sequences) {
          if (!s.done && (opts.signal?.aborted || s.request.signal?.aborted)) finishSequence(s, 'canceled', events);
        }
        // rows leave with their sequence, or when a guided image closes; they join when one opens
        batch.keepRows((r) => !r.seq.done && (r.role === 'full' || r.seq.imageCount >= 0));
        for (const s of sequences) if (s.hasGuidanceRows && s.imageCount < 0) s.hasGuidanceRows = false;
        const opening = sequences.filter((s) => s.guided && !s.done && s.imageCount === 0 && !s.hasGuidanceRows);
        for (const s of opening) {
          batch.addRows(rowPrompts(c, this.imageIds, s, ['image', 'uncond']));
          s.hasGuidanceRows = true;
        }
        yield* events.splice(0);
        if (batch.rows.length === 0) break;

        // runs are synchronous: let the thread's event loop in now and then (a cancel arrives as a message)
        if (performance.now() - lastTurn > EVENT_LOOP_TURN_MS) {
          await setImmediate();
          lastTurn = performance.now();
        }
        const tokens = batch.step(this.headFor(batch.groups));
        batch.groups.forEach((s, g) => acceptToken(c, this.codeOf, s, tokens[g], events));
        // events go out as the Loop engine's did: after the first step, every chunk of steps, and
        // at once when a sequence finishes or an image opens or closes (consecutive text merges)
        stepsSinceFlush++;
        if (steps++ === 0 || stepsSinceFlush >= chunkSize || events.some((e) => e.type !== 'text' && e.type !== 'image_rows')) {
          stepsSinceFlush = 0;
          yield* events.splice(0);
        }
      }
      yield* events.splice(0);
    } finally {
      batch.release();
    }
  }

  /** The image head when every group is drawing an image (it cannot produce eoi or text). */
  private headFor(groups: Sequence[]): LoopHead {
    const N = this.config.imageSeqLength;
    return this.heads.image && groups.every((s) => s.imageCount >= 0 && s.imageCount < N) ? 'image' : 'full';
  }

  /** @internal the sessions a batch binds */
  sessions() {
    return { step: this.step, heads: this.heads, imageColumns: this.imageColumns };
  }

  async release(): Promise<void> {
    this.step.release();
    this.heads.full.release();
    this.heads.image?.release();
  }
}

/** How long generate() may hold its thread before it lets queued messages and timers run. */
const EVENT_LOOP_TURN_MS = 10;

interface Row {
  seq: Sequence;
  role: RowRole;
  /** Tokens in this row's cache. */
  length: number;
}

/**
 * One generate() call's buffers: the cache (per layer K and V, [slots, Hkv, context, Dc]), each
 * row's last hidden state, the ids the head writes for the step, and each group's inputs to the
 * head. Rows are slots 0..R-1 in order; groups are the sequences those rows belong to.
 */
class Batch {
  rows: Row[] = [];
  groups: Sequence[] = [];
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];
  private readonly rowFloats: number; // floats per cache row
  private readonly hidden: Float32Array;
  private readonly ids: BigInt64Array;
  private readonly seqlens: Int32Array;
  private readonly total = new Int32Array(1);
  private bound: { step: IoBinding; head: Record<LoopHead, IoBinding | undefined>; values: Value[]; group: GroupInputs } | undefined;

  constructor(
    private readonly engine: StepGenerator,
    private readonly c: AnoleConfig,
    private readonly slots: number,
    private readonly context: number,
  ) {
    this.rowFloats = c.numKeyValueHeads * context * cacheHeadDim(c.headDim);
    this.keys = Array.from({ length: c.numHiddenLayers }, () => new Float32Array(slots * this.rowFloats));
    this.values = Array.from({ length: c.numHiddenLayers }, () => new Float32Array(slots * this.rowFloats));
    this.hidden = new Float32Array(slots * c.hiddenSize);
    this.ids = new BigInt64Array(slots);
    this.seqlens = new Int32Array(slots);
  }

  /** Prefills each prompt into the next free slot (one run per row, no padding). */
  addRows(rows: { seq: Sequence; role: RowRole; prompt: number[] }[]): void {
    this.unbind();
    const { step } = this.engine.sessions();
    for (const { seq, role, prompt } of rows) {
      const slot = this.rows.length;
      if (slot >= this.slots) throw new Error(`engine v2: no free cache slot for a ${role} row`);
      if (prompt.length >= this.context) throw new Error(`engine v2: a prompt of ${prompt.length} tokens does not fit the ${this.context}-token cache`);
      const own: Value[] = [];
      const binding = new IoBinding(step);
      try {
        const value = (v: Value) => (own.push(v), v);
        binding.bindInput(STEP_INPUTS.inputIds, value(Value.fromArray(BigInt64Array.from(prompt, BigInt), [1, prompt.length])));
        binding.bindInput(STEP_INPUTS.seqlensK, value(Value.fromArray(Int32Array.of(prompt.length - 1), [1])));
        binding.bindInput(STEP_INPUTS.totalSequenceLength, value(Value.fromArray(Int32Array.of(prompt.length), [])));
        this.bindCache(binding, slot, 1, value);
        binding.bindOutput(STEP_HIDDEN, value(Value.fromArray(this.hidden.subarray(slot * this.c.hiddenSize, (slot + 1) * this.c.hiddenSize), [1, 1, this.c.hiddenSize])));
        binding.run();
      } finally {
        binding.release();
        for (const v of own.reverse()) v.release();
      }
      this.engine.stats.runs++;
      this.engine.stats.bytesIn += prompt.length * 8 + 8;
      this.rows.push({ seq, role, length: prompt.length });
    }
    this.regroup();
  }

  /** Groups are the sequences of the rows, in row order. */
  private regroup(): void {
    this.groups = [...new Set(this.rows.map((r) => r.seq))];
  }

  /** Keeps the rows `keep` accepts, moving their cache rows and hidden states down to fill the gaps. */
  keepRows(keep: (r: Row) => boolean): void {
    if (this.rows.every(keep)) return;
    this.unbind();
    const kept: Row[] = [];
    const C = this.c.hiddenSize;
    this.rows.forEach((row, from) => {
      if (!keep(row)) return;
      const to = kept.length;
      if (to !== from) {
        for (const cache of [...this.keys, ...this.values]) cache.copyWithin(to * this.rowFloats, from * this.rowFloats, (from + 1) * this.rowFloats);
        this.hidden.copyWithin(to * C, from * C, (from + 1) * C);
      }
      kept.push(row);
    });
    this.rows = kept;
    this.regroup();
  }

  /** One token per group: the head's run, then the step's run that writes every row's next position. */
  step(head: LoopHead): number[] {
    if (!this.bound) this.bind();
    const b = this.bound!;
    const { group } = b;
    const G = this.groups.length;
    this.groups.forEach((s, g) => {
      group.imageCount[g] = BigInt(s.imageCount);
      group.remaining[g] = BigInt(s.remaining);
      group.uniform[g] = s.uniforms.peek(1)[0];
    });
    const binding = b.head[head]!;
    binding.run();
    const tokens = Array.from(group.token.subarray(0, G), Number);
    this.groups.forEach((s, g) => {
      s.uniforms.consume(1);
      const id = tokens[g];
      s.seen[id] = 1;
      group.seen[g * this.c.vocabSize + id] = 1;
    });
    // every row writes its token at position `length`
    let longest = 0;
    this.rows.forEach((r, i) => {
      this.seqlens[i] = r.length;
      r.length++;
      longest = Math.max(longest, r.length);
    });
    this.total[0] = longest;
    b.step.run();
    const stats = this.engine.stats;
    stats.runs += 2;
    if (head === 'image') stats.imageHeadRuns++;
    stats.bytesIn += G * (8 + 8 + 4 + 1) + this.rows.length * 4 + 4; // image count, remaining, uniform, seen bit; lengths; total
    stats.bytesOut += G * 8;
    stats.tokens += G;
    return tokens;
  }

  /** Binds every input and output for the current rows and groups. */
  private bind(): void {
    const c = this.c;
    const R = this.rows.length;
    const { step, heads, imageColumns } = this.engine.sessions();
    const group = groupInputs(c, this.rows, this.groups, imageColumns);
    this.engine.stats.bytesIn += group.byteLength;
    const values: Value[] = [];
    const value = (v: Value) => (values.push(v), v);
    const hidden = value(Value.fromArray(this.hidden.subarray(0, R * c.hiddenSize), [R, 1, c.hiddenSize]));
    const ids = value(Value.fromArray(this.ids.subarray(0, R), [R, 1]));

    const stepBinding = new IoBinding(step);
    stepBinding.bindInput(STEP_INPUTS.inputIds, ids);
    stepBinding.bindInput(STEP_INPUTS.seqlensK, value(Value.fromArray(this.seqlens.subarray(0, R), [R])));
    stepBinding.bindInput(STEP_INPUTS.totalSequenceLength, value(Value.fromArray(this.total, [])));
    this.bindCache(stepBinding, 0, R, value);
    stepBinding.bindOutput(STEP_HIDDEN, hidden);

    const headBinding = (session: Session | undefined, head: LoopHead) => {
      if (!session) return undefined;
      const binding = new IoBinding(session);
      binding.bindInput(H.hidden, hidden);
      for (const [name, v] of group.inputs(head)) binding.bindInput(name, value(v));
      binding.bindOutput(HEAD_OUTPUTS.token, value(Value.fromArray(group.token, [this.groups.length])));
      binding.bindOutput(HEAD_OUTPUTS.rowIds, ids);
      return binding;
    };
    this.bound = { step: stepBinding, head: { full: headBinding(heads.full, 'full'), image: headBinding(heads.image, 'image') }, values, group };
  }

  /** Past and present of every layer bound to the same memory: rows [first, first + count) of the cache. */
  private bindCache(binding: IoBinding, first: number, count: number, value: (v: Value) => Value): void {
    const dims = [count, this.c.numKeyValueHeads, this.context, cacheHeadDim(this.c.headDim)];
    const rows = (cache: Float32Array) => value(Value.fromArray(cache.subarray(first * this.rowFloats, (first + count) * this.rowFloats), dims));
    for (let l = 0; l < this.c.numHiddenLayers; l++) {
      const names = cacheNames(l);
      const [k, v] = [rows(this.keys[l]), rows(this.values[l])];
      binding.bindInput(names.pastKey, k).bindOutput(names.presentKey, k);
      binding.bindInput(names.pastValue, v).bindOutput(names.presentValue, v);
    }
  }

  private unbind(): void {
    if (!this.bound) return;
    this.bound.step.release();
    this.bound.head.full?.release();
    this.bound.head.image?.release();
    for (const v of this.bound.values.reverse()) v.release();
    this.bound = undefined;
  }

  release(): void {
    this.unbind();
  }
}

/** The head's per-group inputs for the current rows, written once per batch shape. */
interface GroupInputs {
  imageCount: BigInt64Array;
  remaining: BigInt64Array;
  uniform: Float32Array;
  seen: Uint8Array;
  token: BigInt64Array;
  byteLength: number;
  inputs(head: LoopHead): [string, Value][];
}

function groupInputs(c: AnoleConfig, rows: Row[], groups: Sequence[], imageColumns: [number, number] | undefined): GroupInputs {
  const G = groups.length;
  const R = rows.length;
  const V = c.vocabSize;
  const rowOf = (s: Sequence, role: RowRole) => rows.findIndex((r) => r.seq === s && r.role === role);
  const perGroup = <T>(f: (s: Sequence) => T[]) => groups.flatMap(f);
  const i64 = (xs: number[]) => BigInt64Array.from(xs, BigInt);
  const settings = (s: Sequence) => [s.request.text, s.request.image];
  const seen = new Uint8Array(G * V);
  const textAllowed = new Uint8Array(G * V);
  const bias = new Float32Array(G * V);
  groups.forEach((s, g) => {
    seen.set(s.seen, g * V);
    textAllowed.set(s.textAllowed, g * V);
    bias.set(s.bias, g * V);
  });
  const fixed: [string, ArrayBufferView, number[]][] = [
    [I.rowGroup, i64(rows.map((r) => groups.indexOf(r.seq))), [R]],
    [I.rowFull, i64(groups.map((s) => rowOf(s, 'full'))), [G]],
    [I.rowImage, i64(groups.map((s) => (s.hasGuidanceRows ? rowOf(s, 'image') : rowOf(s, 'full')))), [G]],
    [I.rowUncond, i64(groups.map((s) => (s.hasGuidanceRows ? rowOf(s, 'uncond') : rowOf(s, 'full')))), [G]],
    [I.guided, Uint8Array.from(groups, (s) => Number(s.guided)), [G]],
    [I.scaleImage, Float32Array.from(groups, (s) => s.request.guidance.image), [G]],
    [I.scaleText, Float32Array.from(groups, (s) => s.request.guidance.text), [G]],
    [I.allowBoi, Uint8Array.from(groups, (s) => Number(s.request.constraints.allowBoi)), [G]],
    [I.stopAfterImage, Uint8Array.from(groups, (s) => Number(s.request.constraints.stopAfterImage)), [G]],
    [I.temperature, Float32Array.from(perGroup((s) => settings(s).map((x) => x.temperature))), [G, 2]],
    [I.topP, Float32Array.from(perGroup((s) => settings(s).map((x) => x.topP))), [G, 2]],
    [I.topK, i64(perGroup((s) => settings(s).map((x) => x.topK))), [G, 2]],
    [I.greedy, Uint8Array.from(perGroup((s) => settings(s).map((x) => Number(x.greedy)))), [G, 2]],
    [I.penalty, Float32Array.from(groups, (s) => s.request.repetitionPenalty), [G]],
  ];
  const state = { imageCount: new BigInt64Array(G), remaining: new BigInt64Array(G), uniform: new Float32Array(G), done: new Uint8Array(G) };
  const byteLength = [...fixed.map(([, a]) => a.byteLength), seen.byteLength, textAllowed.byteLength, bias.byteLength].reduce((a, b) => a + b, 0);
  return {
    ...state,
    seen,
    token: new BigInt64Array(G),
    byteLength,
    inputs(head) {
      const values: [string, Value][] = fixed.map(([name, data, dims]) => [name, Value.fromArray(data, dims, data instanceof Uint8Array ? 'bool' : undefined)]);
      values.push(
        [H.imageCount, Value.fromArray(state.imageCount, [G])],
        [H.done, Value.fromArray(state.done, [G], 'bool')],
        [H.remaining, Value.fromArray(state.remaining, [G])],
        [H.seen, Value.fromArray(seen, [G, V], 'bool')],
        [H.uniform, Value.fromArray(state.uniform, [G])],
      );
      if (head === 'full') {
        values.push([I.textAllowed, Value.fromArray(textAllowed, [G, V], 'bool')], [I.bias, Value.fromArray(bias, [G, V])]);
      } else {
        const [first, end] = imageColumns!;
        const W = end - first;
        const columns = new Float32Array(G * W);
        groups.forEach((s, g) => columns.set(s.bias.subarray(first, end), g * W));
        values.push([I.bias, Value.fromArray(columns, [G, W])]);
      }
      return values;
    },
  };
}
