import { setImmediate } from 'node:timers/promises';
import type { AnoleConfig } from '../../model/config.ts';
import { imageVocabulary } from '../../model/vocabulary.ts';
import { cacheNames } from '../graphs/decoder.ts';
import { copyName, buildCopyGraph } from '../graphs/copy-graph.ts';
import { imageTokenRange, LOOP_INPUTS as I, settingInputs, type LoopHead } from '../graphs/generation-loop.ts';
import { HEAD_INPUTS as H, HEAD_OUTPUTS } from '../graphs/head-graph.ts';
import { activationType, type Precision } from '../graphs/precision.ts';
import { cacheHeadDim, STEP_HIDDEN, STEP_INPUTS } from '../graphs/step-decoder.ts';
import { DataType, type BuiltModel, type DataTypeId, type Dim } from '../onnx/graph-builder.ts';
import { defaultExecutionProviders, providerSessionOptions, type SessionConfig } from '../onnx/session.ts';
import { Allocator, cudaProviderOptionsString, IoBinding, MemoryInfo, Session, Value, type ElementType } from '../ort-capi/index.ts';
import { cudaOptionsFromEnv } from './cuda-options.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import type { GenerateOptions, TransferStats } from './generator.ts';
import { asModelSource, type ModelSource } from './model-source.ts';
import { acceptToken, finishSequence, rowPrompts, startSequence, type GenerationEvent, type RowRole, type Sequence } from './sequence.ts';

/**
 * Engine v2 (docs/engine-v2.md): the KV cache never leaves ONNX Runtime. Every sequence owns slots
 * of one preallocated cache per layer, [slots, Hkv, context, Dc], which the step graph updates in
 * place. A decode step is four runs through ONNX Runtime's C API (sidecar/ort-capi), all bound once
 * per generate() call:
 *
 *   upload   the step's few numbers per group and each slot's length, host → device
 *   head     slots' last hidden states → one token per group (and each slot's next input id)
 *   download the tokens, device → host
 *   step     those ids → every layer's cache slot written in place → the next hidden states
 *
 * Guidance rows join (prefilled into their slots) when an image opens and idle when it closes; a
 * finished sequence's slots idle. Every buffer the head and the step read or write is memory ONNX
 * Runtime allocated for the step session: the GPU's on CUDA, so nothing of a decode step but the
 * upload and the download crosses to the host.
 */
export class StepGenerator {
  readonly stats: TransferStats = { runs: 0, imageHeadRuns: 0, bytesIn: 0, bytesOut: 0, tokens: 0, bindings: 0 };
  private readonly imageIds: Set<number>;
  private readonly codeOf: Int32Array;
  private readonly imageColumns: [number, number] | undefined;
  private readonly allocator: Allocator;
  /** What the decode runs of the latest generate() call are bound to (test/step-generator-bindings.test.ts). */
  decodeBindings: BoundValue[] = [];

  private constructor(
    readonly config: AnoleConfig,
    private readonly step: Session,
    private readonly heads: { full: Session; image?: Session },
    private readonly copies: { step: Session; token: Session; settings: Session },
    /** Where the decode buffers live: the memory of the step session's first provider. */
    memory: MemoryInfo,
    /** The cache's and hidden states' element type: float32 on the CPU, fp16 / bf16 on CUDA. */
    readonly floatType: ElementType,
  ) {
    const vocab = imageVocabulary(config);
    this.imageIds = new Set(vocab.codeToToken);
    this.codeOf = vocab.tokenToCode;
    this.imageColumns = heads.image ? imageTokenRange(vocab.codeToToken) : undefined;
    this.allocator = Allocator.forSession(step, memory);
  }

  static async load(model: Checkpoint | ModelSource, opts: SessionConfig & { imageHead?: boolean; log?: (line: string) => void } = {}): Promise<StepGenerator> {
    const source = asModelSource(model);
    const step = source.graph('step'); // a bad checkpoint throws its CheckpointError here
    const config = source.checkpoint.config!;
    if (!step) throw new Error(`${source.dir}: engine v2 has no graphs for --target ${source.precision.target} --dtype ${source.precision.dtype} (GroupQueryAttention runs fp16 / bf16 on CUDA)`);
    const providers = providerSessionOptions(opts.executionProviders ?? (await defaultExecutionProviders()));
    const cuda = providers.executionProviders.includes('cuda') ? cudaOptionsFromEnv() : undefined;
    // Each session has its own intra-op pool, and a pool's threads spin after a run: the head's would
    // spin through the step's run and the step's through the head's, both on the same cores (on 2 cores
    // it halved the speed: docs/engine-v2.md). The copy graphs run on one thread.
    const sessionConfig = { ...Object.fromEntries(Object.entries(providers.config).map(([k, v]) => [`session.${k}`, v])), 'session.intra_op.allow_spinning': '0' };
    const open = (graph: BuiltModel, threads = opts.intraOpNumThreads) =>
      Session.fromBytes(graph.bytes, { intraOpThreads: threads, externalDataDir: graph.externalDir, config: sessionConfig, cuda, profilePrefix: opts.profileFilePrefix });
    const opened: Session[] = [];
    const track = (s: Session) => (opened.push(s), s);
    try {
      const stepSession = track(open(step));
      if (cuda) (opts.log ?? ((line) => console.error(line)))(`onnxruntime: engine v2 on CUDA, provider options ${cudaProviderOptionsString(cuda)}`);
      const image = (opts.imageHead ?? true) ? source.graph('head-image') : undefined;
      const heads = { full: track(open(source.graph('head-full')!)), image: image && track(open(image)) };
      const copies = copyGraphs(config, image !== undefined);
      const copySessions = { step: track(open(copies.step, 1)), token: track(open(copies.token, 1)), settings: track(open(copies.settings, 1)) };
      const memory = cuda ? MemoryInfo.cuda(cuda.device_id) : MemoryInfo.cpu();
      return new StepGenerator(config, stepSession, heads, copySessions, memory, activationElementType(source.precision));
    } catch (e) {
      for (const s of opened.reverse()) s.release();
      throw e;
    }
  }

  async *generate(requests: SequenceRequest[], opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    if (requests.length === 0) return;
    const c = this.config;
    const chunkSize = opts.chunkSize ?? c.vq.quantStateDims[1];
    if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`);
    const sequences = requests.map((r, i) => startSequence(c, r, i));
    const context = Math.max(...sequences.map((s) => s.request.promptIds.length + s.request.maxNewTokens)) + 1;
    const batch = new Batch(this, c, sequences, context);
    const events: GenerationEvent[] = [];
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
        // rows stop with their sequence, or when a guided image closes; guidance rows join when one opens
        batch.retireRows((r) => !r.seq.done && (r.role === 'full' || r.seq.imageCount >= 0));
        for (const s of sequences) if (s.hasGuidanceRows && s.imageCount < 0) s.hasGuidanceRows = false;
        const opening = sequences.filter((s) => s.guided && !s.done && s.imageCount === 0 && !s.hasGuidanceRows);
        for (const s of opening) {
          batch.addRows(rowPrompts(c, this.imageIds, s, ['image', 'uncond']));
          s.hasGuidanceRows = true;
        }
        yield* events.splice(0);
        if (batch.activeRows === 0) break;

        // runs are synchronous: let the thread's event loop in now and then (a cancel arrives as a message)
        if (performance.now() - lastTurn > EVENT_LOOP_TURN_MS) {
          await setImmediate();
          lastTurn = performance.now();
        }
        const live = sequences.filter((s) => !s.done);
        const tokens = batch.step(this.headFor(live));
        sequences.forEach((s, g) => {
          if (s.done) return;
          s.seen[tokens[g]] = 1; // the head marked it on its side too
          s.counts[tokens[g]]++;
          acceptToken(c, this.codeOf, s, tokens[g], events);
        });
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

  /** The image head when every live group is drawing an image (it cannot produce eoi or text). */
  private headFor(live: Sequence[]): LoopHead {
    const N = this.config.imageSeqLength;
    return this.heads.image && live.every((s) => s.imageCount >= 0 && s.imageCount < N) ? 'image' : 'full';
  }

  /** @internal the sessions and allocator a batch binds */
  sessions() {
    return { step: this.step, heads: this.heads, imageColumns: this.imageColumns, allocator: this.allocator, copyStep: this.copies.step, copyToken: this.copies.token, copySettings: this.copies.settings };
  }

  async release(): Promise<void> {
    this.allocator.release();
    for (const s of [this.step, this.heads.full, this.heads.image, this.copies.step, this.copies.token, this.copies.settings]) s?.release();
  }
}

/** The decoder's activation type as the C API names it (bf16 and fp16 tensors need no JavaScript representation). */
function activationElementType(p: Precision): ElementType {
  const t = activationType(p);
  return t === DataType.BFLOAT16 ? 'bfloat16' : t === DataType.FLOAT16 ? 'float16' : 'float32';
}

/** The copy graphs of a model: a step's uploads, the tokens' download, the settings' upload. */
function copyGraphs(c: AnoleConfig, imageHead: boolean) {
  const V = c.vocabSize;
  const [int64, bool, float] = [DataType.INT64, DataType.BOOL, DataType.FLOAT];
  return {
    step: buildCopyGraph('upload_step', [
      [H.imageCount, int64, ['groups']],
      [H.remaining, int64, ['groups']],
      [H.done, bool, ['groups']],
      [H.uniform, float, ['groups']],
      [STEP_INPUTS.seqlensK, DataType.INT32, ['rows']],
    ]),
    token: buildCopyGraph('download_token', [[HEAD_OUTPUTS.token, int64, ['groups']]]),
    settings: buildCopyGraph('upload_settings', [
      ...settingInputs(V, 'full', V).map(([name, type, dims]): [string, DataTypeId, Dim[]] => [name, type as DataTypeId, dims]),
      [H.seen, bool, ['groups', V]],
      [H.counts, float, ['groups', V]],
      ...(imageHead ? [[IMAGE_BIAS, float, ['groups', 'width']] as [string, DataTypeId, Dim[]]] : []),
    ]),
  };
}

/** How long generate() may hold its thread before it lets queued messages and timers run. */
const EVENT_LOOP_TURN_MS = 10;

interface Row {
  seq: Sequence;
  role: RowRole;
  /** Tokens in this row's cache; rows that do not take part (a finished sequence, guidance outside an image) idle. */
  length: number;
  active: boolean;
}

/** Decode inputs JavaScript sets before each step, and the token it reads after. */
const STEP_UPLOADS = [H.imageCount, H.remaining, H.done, H.uniform, STEP_INPUTS.seqlensK] as const;

/**
 * One generate() call's buffers, all in memory ONNX Runtime allocated through the step session (the
 * GPU's on CUDA): per layer the K and V cache [slots, Hkv, context, Dc], each slot's last hidden
 * state, the ids the head writes for the step, two `seen` buffers the head writes in turn, and the
 * head's settings. Every sequence has its slots for the whole call (three with guidance), so the
 * decode bindings are made once: the same shapes and addresses at every step. JavaScript reaches
 * them only through the copy sessions: a step's few numbers up, its tokens down.
 */
class Batch {
  readonly rows: Row[];
  readonly groups: Sequence[];
  private readonly owned: Value[] = [];
  private readonly host: { [K in (typeof STEP_UPLOADS)[number]]: Int32Array | BigInt64Array | Uint8Array | Float32Array } & { token: BigInt64Array };
  private readonly device: Record<string, Value> = {};
  private readonly caches: { key: Value; value: Value }[];
  private readonly total: Value;
  private bindings: { step: IoBinding; head: Record<LoopHead, (IoBinding | undefined)[]>; upload: IoBinding; download: IoBinding } | undefined;
  private parity = 0; // which `seen` buffer the next step reads

  constructor(
    private readonly engine: StepGenerator,
    private readonly c: AnoleConfig,
    sequences: Sequence[],
    private readonly context: number,
  ) {
    this.groups = sequences;
    this.rows = sequences.flatMap((seq) => (seq.guided ? (['full', 'image', 'uncond'] as RowRole[]) : (['full'] as RowRole[])).map((role) => ({ seq, role, length: 0, active: false })));
    const { allocator } = engine.sessions();
    const [R, G, V] = [this.rows.length, this.groups.length, c.vocabSize];
    const allocate = (dims: number[], type: ElementType) => this.own(Value.allocate(allocator, dims, type));
    const cacheDims = [R, c.numKeyValueHeads, context, cacheHeadDim(c.headDim)];
    const float = engine.floatType;
    this.caches = Array.from({ length: c.numHiddenLayers }, () => ({ key: allocate(cacheDims, float), value: allocate(cacheDims, float) }));
    this.device.hidden = allocate([R, 1, c.hiddenSize], float);
    this.device.ids = allocate([R, 1], 'int64');
    this.device.seenA = allocate([G, V], 'bool');
    this.device.seenB = allocate([G, V], 'bool');
    this.device.countsA = allocate([G, V], 'float32');
    this.device.countsB = allocate([G, V], 'float32');
    this.device.token = allocate([G], 'int64');
    this.host = {
      [H.imageCount]: new BigInt64Array(G),
      [H.remaining]: new BigInt64Array(G),
      [H.done]: new Uint8Array(G),
      [H.uniform]: new Float32Array(G),
      [STEP_INPUTS.seqlensK]: new Int32Array(R),
      token: new BigInt64Array(G),
    } as Batch['host'];
    for (const name of STEP_UPLOADS) this.device[name] = allocate(dimsOf(name, R, G), elementTypeOf(this.host[name]));
    // GroupQueryAttention reads total_sequence_length on the host (its kernels declare it a CPU input); each
    // row's length comes from seqlens_k, so the buffer's capacity serves every step
    this.total = this.own(Value.fromArray(Int32Array.of(context), []));
  }

  /** Prefills each row's prompt into its own slot (a run of the step graph with R = 1) and makes it take part. */
  addRows(rows: { seq: Sequence; role: RowRole; prompt: number[] }[]): void {
    const { step } = this.engine.sessions();
    for (const { seq, role, prompt } of rows) {
      const slot = this.rows.findIndex((r) => r.seq === seq && r.role === role);
      if (prompt.length >= this.context) throw new Error(`engine v2: a prompt of ${prompt.length} tokens does not fit the ${this.context}-token cache`);
      const views: Value[] = [];
      const view = (v: Value) => (views.push(v), v);
      const binding = new IoBinding(step);
      try {
        // a prefill is not a decode step: its ids and length go in from host memory, ONNX Runtime copies them
        binding.bindInput(STEP_INPUTS.inputIds, view(Value.fromArray(BigInt64Array.from(prompt, BigInt), [1, prompt.length])));
        binding.bindInput(STEP_INPUTS.seqlensK, view(Value.fromArray(Int32Array.of(prompt.length - 1), [1])));
        binding.bindInput(STEP_INPUTS.totalSequenceLength, view(Value.fromArray(Int32Array.of(prompt.length), [])));
        this.bindCache(binding, { index: slot, views });
        binding.bindOutput(STEP_HIDDEN, view(this.slotView(this.device.hidden, slot)));
        binding.run();
      } finally {
        binding.release();
        for (const v of views.reverse()) v.release();
      }
      this.engine.stats.runs++;
      this.engine.stats.bytesIn += prompt.length * 8 + 8;
      Object.assign(this.rows[slot], { length: prompt.length, active: true });
    }
    this.settingsChanged = true;
  }

  /** Rows of finished sequences, and guidance rows outside an image, stop taking part (their slots idle). */
  retireRows(keep: (r: Row) => boolean): void {
    for (const r of this.rows) {
      if (r.active && !keep(r)) {
        r.active = false;
        this.settingsChanged = true;
      }
    }
  }

  get activeRows(): number {
    return this.rows.filter((r) => r.active).length;
  }

  private settingsChanged = true;

  /** One token per group: upload the step's numbers, the head, download the tokens, the step. */
  step(head: LoopHead): number[] {
    if (!this.bindings) this.bind();
    if (this.settingsChanged) this.uploadSettings();
    const b = this.bindings!;
    const h = this.host;
    this.groups.forEach((s, g) => {
      h[H.imageCount][g] = BigInt(s.imageCount);
      h[H.remaining][g] = BigInt(s.remaining);
      h[H.done][g] = Number(s.done);
      h[H.uniform][g] = s.done ? 0 : s.uniforms.peek(1)[0];
    });
    // every taking-part row writes its token at position `length`; idle rows rewrite position 0
    this.rows.forEach((r, i) => (h[STEP_INPUTS.seqlensK][i] = r.active ? r.length : 0));
    b.upload.run();
    b.head[head][this.parity]!.run();
    b.download.run();
    b.step.run();
    this.parity ^= 1;
    for (const r of this.rows) if (r.active) r.length++;
    const tokens = Array.from(h.token, Number);
    this.groups.forEach((s) => !s.done && s.uniforms.consume(1));
    const live = this.groups.filter((s) => !s.done).length;
    const stats = this.engine.stats;
    stats.runs += 4;
    if (head === 'image') stats.imageHeadRuns++;
    stats.bytesIn += STEP_UPLOADS.reduce((n, name) => n + h[name].byteLength, 0);
    stats.bytesOut += h.token.byteLength;
    stats.tokens += live;
    return tokens;
  }

  /** The per-group settings and each group's `seen` set, uploaded when the rows that take part change. */
  private uploadSettings(): void {
    const { copySettings, imageColumns } = this.engine.sessions();
    const settings = groupSettings(this.c, this.rows, this.groups, imageColumns);
    const binding = new IoBinding(copySettings);
    const views: Value[] = [];
    try {
      for (const [name, data, dims] of settings) {
        const source = Value.fromArray(data, dims, data instanceof Uint8Array ? 'bool' : undefined);
        views.push(source);
        binding.bindInput(name, source);
        binding.bindOutput(copyName(name), this.settingValue(name, dims, source.elementType));
      }
      binding.run();
    } finally {
      binding.release();
      for (const v of views) v.release();
    }
    this.engine.stats.runs++;
    this.engine.stats.bytesIn += settings.reduce((n, [, data]) => n + data.byteLength, 0);
    this.settingsChanged = false;
  }

  /** A setting's device buffer (made the first time; its shape never changes within a call). */
  private settingValue(name: string, dims: number[], type: ElementType): Value {
    const key = name === H.seen ? (this.parity === 0 ? 'seenA' : 'seenB') : name === H.counts ? (this.parity === 0 ? 'countsA' : 'countsB') : `setting:${name}`;
    this.device[key] ??= this.own(Value.allocate(this.engine.sessions().allocator, dims, type));
    return this.device[key];
  }

  /** Binds the decode runs once: the step, both heads at both parities, the upload and the download. */
  private bind(): void {
    const { step, heads, copyStep, copyToken, imageColumns } = this.engine.sessions();
    const d = this.device;
    if (this.settingsChanged) this.uploadSettings(); // makes the settings' device buffers

    const stepBinding = new IoBinding(step);
    stepBinding.bindInput(STEP_INPUTS.inputIds, d.ids);
    stepBinding.bindInput(STEP_INPUTS.seqlensK, d[STEP_INPUTS.seqlensK]);
    stepBinding.bindInput(STEP_INPUTS.totalSequenceLength, this.total);
    this.bindCache(stepBinding);
    stepBinding.bindOutput(STEP_HIDDEN, d.hidden);

    const headBinding = (session: Session | undefined, head: LoopHead, parity: number) => {
      if (!session) return undefined;
      const binding = new IoBinding(session);
      binding.bindInput(H.hidden, d.hidden);
      for (const name of [H.imageCount, H.remaining, H.done, H.uniform]) binding.bindInput(name, d[name]);
      binding.bindInput(H.seen, parity === 0 ? d.seenA : d.seenB);
      binding.bindInput(H.counts, parity === 0 ? d.countsA : d.countsB);
      for (const name of settingNames(head)) binding.bindInput(name, d[`setting:${name === I.bias && head === 'image' ? IMAGE_BIAS : name}`]);
      binding.bindOutput(HEAD_OUTPUTS.token, d.token);
      binding.bindOutput(HEAD_OUTPUTS.rowIds, d.ids);
      binding.bindOutput(HEAD_OUTPUTS.nextSeen, parity === 0 ? d.seenB : d.seenA);
      binding.bindOutput(HEAD_OUTPUTS.nextCounts, parity === 0 ? d.countsB : d.countsA);
      return binding;
    };
    const upload = new IoBinding(copyStep);
    const views: Value[] = [];
    for (const name of STEP_UPLOADS) {
      const host = this.own(Value.fromArray(this.host[name], [this.host[name].length], this.host[name] instanceof Uint8Array ? 'bool' : undefined));
      views.push(host);
      upload.bindInput(name, host).bindOutput(copyName(name), d[name]);
    }
    const download = new IoBinding(copyToken);
    download.bindInput(HEAD_OUTPUTS.token, d.token).bindOutput(copyName(HEAD_OUTPUTS.token), this.own(Value.fromArray(this.host.token, [this.groups.length])));
    this.bindings = {
      step: stepBinding,
      head: {
        full: [headBinding(heads.full, 'full', 0), headBinding(heads.full, 'full', 1)],
        image: imageColumns ? [headBinding(heads.image, 'image', 0), headBinding(heads.image, 'image', 1)] : [],
      },
      upload,
      download,
    };
    this.engine.stats.bindings++;
    this.engine.decodeBindings = describeBindings({ step: [stepBinding], head: [...this.bindings.head.full, ...this.bindings.head.image] });
  }

  /** Past and present of every layer bound to the same memory: the whole cache, or (`slot`) one slot's view of it. */
  private bindCache(binding: IoBinding, slot?: { index: number; views: Value[] }): void {
    const part = (buffer: Value) => {
      if (!slot) return buffer;
      const view = this.slotView(buffer, slot.index);
      slot.views.push(view);
      return view;
    };
    for (let l = 0; l < this.c.numHiddenLayers; l++) {
      const names = cacheNames(l);
      const [k, v] = [part(this.caches[l].key), part(this.caches[l].value)];
      binding.bindInput(names.pastKey, k).bindOutput(names.presentKey, k);
      binding.bindInput(names.pastValue, v).bindOutput(names.presentValue, v);
    }
  }

  /** Slot `index` of a [slots, …] buffer, as a [1, …] view (released by the caller). */
  private slotView(buffer: Value, index: number): Value {
    const slotBytes = buffer.byteLength / buffer.dims[0];
    return buffer.view(index * slotBytes, [1, ...buffer.dims.slice(1)]);
  }

  private own(v: Value): Value {
    this.owned.push(v);
    return v;
  }

  release(): void {
    if (this.bindings) {
      const b = this.bindings;
      for (const binding of [b.step, ...b.head.full, ...b.head.image, b.upload, b.download]) binding?.release();
    }
    for (const v of this.owned.reverse()) v.release();
  }
}

/** One value a decode run reads or writes: whose memory it is, on which device, its shape and address. */
export interface BoundValue {
  run: 'step' | 'head';
  name: string;
  direction: 'input' | 'output';
  /** 'ort': allocated by ONNX Runtime for the step session (device memory on CUDA); 'host': JavaScript's. */
  owner: 'ort' | 'host';
  memory: string;
  dims: readonly number[];
  address: bigint;
}

function describeBindings(runs: Record<BoundValue['run'], (IoBinding | undefined)[]>): BoundValue[] {
  const out: BoundValue[] = [];
  for (const [run, bindings] of Object.entries(runs) as [BoundValue['run'], (IoBinding | undefined)[]][]) {
    for (const binding of bindings) {
      if (!binding) continue;
      const { inputs, outputs } = binding.bound();
      const entries = [...[...inputs].map(([n, v]) => ['input', n, v] as const), ...[...outputs].map(([n, v]) => ['output', n, v] as const)];
      for (const [direction, name, v] of entries) {
        if (!(v instanceof Value)) throw new Error(`engine v2: ${run} output ${name} is bound to a device, not to a value of its own`);
        out.push({ run, name, direction, owner: v.data === undefined ? 'ort' : 'host', memory: v.memoryInfo().name, dims: v.dims, address: v.dataPointer() });
      }
    }
  }
  return out;
}

/** The image head's bias (its columns only) is a buffer of its own beside the full head's. */
const IMAGE_BIAS = 'logit_bias.image';

/** The head's per-group setting inputs (settingInputs' names) for a head. */
function settingNames(head: LoopHead): string[] {
  return [I.rowGroup, I.rowFull, I.rowImage, I.rowUncond, I.guided, I.scaleImage, I.scaleText, ...(head === 'full' ? [I.textAllowed] : []), I.allowBoi, I.stopAfterImage, I.temperature, I.topP, I.topK, I.greedy, I.penalty, I.presence, I.frequency, I.bias];
}

function dimsOf(name: string, R: number, G: number): number[] {
  return [name === STEP_INPUTS.seqlensK ? R : G];
}

function elementTypeOf(a: ArrayBufferView): ElementType {
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Float32Array) return 'float32';
  return 'bool';
}

/**
 * The head's settings for the rows that take part now, and (`seen`) each group's seen set, as host
 * arrays with their dims: uploaded when rows start or stop taking part.
 */
function groupSettings(c: AnoleConfig, rows: Row[], groups: Sequence[], imageColumns: [number, number] | undefined): [string, ArrayBufferView, number[]][] {
  const G = groups.length;
  const R = rows.length;
  const V = c.vocabSize;
  const rowOf = (s: Sequence, role: RowRole) => rows.findIndex((r) => r.seq === s && r.role === role);
  const guidanceOn = (s: Sequence, role: RowRole) => (s.hasGuidanceRows && rows[rowOf(s, role)]?.active ? rowOf(s, role) : rowOf(s, 'full'));
  const i64 = (xs: number[]) => BigInt64Array.from(xs, BigInt);
  const both = <T>(f: (s: Sequence) => T[]) => groups.flatMap(f);
  const settings = (s: Sequence) => [s.request.text, s.request.image];
  const perVocab = (pick: (s: Sequence) => ArrayLike<number>, Array: Uint8ArrayConstructor | Float32ArrayConstructor) => {
    const out = new Array(G * V);
    groups.forEach((s, g) => out.set(pick(s), g * V));
    return out;
  };
  const out: [string, ArrayBufferView, number[]][] = [
    [I.rowGroup, i64(rows.map((r) => groups.indexOf(r.seq))), [R]],
    [I.rowFull, i64(groups.map((s) => rowOf(s, 'full'))), [G]],
    [I.rowImage, i64(groups.map((s) => guidanceOn(s, 'image'))), [G]],
    [I.rowUncond, i64(groups.map((s) => guidanceOn(s, 'uncond'))), [G]],
    [I.guided, Uint8Array.from(groups, (s) => Number(s.guided)), [G]],
    [I.scaleImage, Float32Array.from(groups, (s) => s.request.guidance.image), [G]],
    [I.scaleText, Float32Array.from(groups, (s) => s.request.guidance.text), [G]],
    [I.textAllowed, perVocab((s) => s.textAllowed, Uint8Array), [G, V]],
    [I.allowBoi, Uint8Array.from(groups, (s) => Number(s.request.constraints.allowBoi)), [G]],
    [I.stopAfterImage, Uint8Array.from(groups, (s) => Number(s.request.constraints.stopAfterImage)), [G]],
    [I.temperature, Float32Array.from(both((s) => settings(s).map((x) => x.temperature))), [G, 2]],
    [I.topP, Float32Array.from(both((s) => settings(s).map((x) => x.topP))), [G, 2]],
    [I.topK, i64(both((s) => settings(s).map((x) => x.topK))), [G, 2]],
    [I.greedy, Uint8Array.from(both((s) => settings(s).map((x) => Number(x.greedy)))), [G, 2]],
    [I.penalty, Float32Array.from(groups, (s) => s.request.repetitionPenalty), [G]],
    [I.presence, Float32Array.from(groups, (s) => s.request.presencePenalty ?? 0), [G]],
    [I.frequency, Float32Array.from(groups, (s) => s.request.frequencyPenalty ?? 0), [G]],
    [I.bias, perVocab((s) => s.bias, Float32Array), [G, V]],
    [H.seen, perVocab((s) => s.seen, Uint8Array), [G, V]],
    [H.counts, perVocab((s) => s.counts, Float32Array), [G, V]],
  ];
  if (imageColumns) {
    const [first, end] = imageColumns;
    const columns = new Float32Array(G * (end - first));
    groups.forEach((s, g) => columns.set(s.bias.subarray(first, end), g * (end - first)));
    out.push([IMAGE_BIAS, columns, [G, end - first]]);
  }
  return out;
}
