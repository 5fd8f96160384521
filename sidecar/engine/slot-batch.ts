import type { AnoleConfig } from '../../model/config.ts';
import { cacheNames } from '../graphs/decoder.ts';
import { copyName } from '../graphs/copy-graph.ts';
import { TOKEN_CHOICE_INPUTS as I, type HeadKind } from '../graphs/head-inputs.ts';
import { HEAD_INPUTS as H, HEAD_OUTPUTS } from '../graphs/head-graph.ts';
import { cacheHeadDim, STEP_HIDDEN, STEP_INPUTS } from '../graphs/step-decoder.ts';
import { IoBinding, RunOptions, Value, type Allocator, type ElementType, type Session } from '../ort-capi/index.ts';
import type { TransferStats } from './generation-engine.ts';
import type { RowRole, Sequence } from './sequence.ts';

/** The sessions a slot batch runs (StepGenerator's). */
export interface StepSessions {
  step: Session;
  heads: { full: Session; image?: Session };
  copyStep: Session;
  copyToken: Session;
  copySettings: Session;
  allocator: Allocator;
  /** The image head's columns of the vocabulary, when there is an image head. */
  imageColumns: [number, number] | undefined;
  /** The cache's and hidden states' element type. */
  floatType: ElementType;
  stats: TransferStats;
}

/** How many sequences' rows the cache holds, and how long each may grow. */
export interface SlotCapacity {
  /** Cache slots (rows): a sequence takes 1, a guided one 3. */
  slots: number;
  /** Tokens per slot: a sequence's prompt + max_new_tokens must fit (at most the rotary tables' max_position_embeddings). */
  context: number;
}

export interface SlotRow {
  seq: Sequence;
  role: RowRole;
  /** Tokens in this slot's cache. */
  length: number;
  /** Takes part in decode steps (writes its next token at `length`). */
  active: boolean;
}

/** Decode inputs JavaScript sets before each step, and the token it reads after. */
const STEP_UPLOADS = [H.imageCount, H.remaining, H.done, H.uniform, STEP_INPUTS.seqlensK] as const;
type HostArrays = { [K in (typeof STEP_UPLOADS)[number]]: Int32Array | BigInt64Array | Uint8Array | Float32Array } & { token: BigInt64Array };

/** The decode runs bound for the first R slots and G groups. */
interface Bound {
  R: number;
  G: number;
  host: HostArrays;
  step: IoBinding;
  head: Record<HeadKind, (IoBinding | undefined)[]>;
  upload: IoBinding;
  download: IoBinding;
  /**
   * Each run's CUDA graph (gpu_graph_id; used when the sessions have enable_cuda_graph): the step's one,
   * the heads' one per parity (they bind the other `seen` / `counts` buffer). Ignored off CUDA.
   */
  graphs: { step: RunOptions; head: [RunOptions, RunOptions] };
  /** Views and host values these bindings read (released with them). */
  values: Value[];
}

/** Runs that must not be captured: a prefill's shapes and addresses are its own (gpu_graph_id -1). */
const NOT_CAPTURED = { gpu_graph_id: '-1' };

/**
 * The engine's KV cache as slots that outlive generate calls (docs/engine-v2.md, "Continuous
 * batching"): per layer one K and one V buffer [slots, Hkv, context, Dc], allocated once by ONNX
 * Runtime for the step session (the GPU's memory on CUDA), with each slot's last hidden state, the
 * ids the head writes, the `seen` / `counts` sets (two of each, written in turn by the head) and the
 * head's settings, all sized for every slot. A sequence reserves its slots and a group (the head's
 * unit: one token per group per step) when it is admitted, prefills its prompt into them in chunks,
 * decodes, and frees them when it ends; others take its place at the next step.
 *
 * A decode step binds views of the first R slots and G groups (the highest ones in use), so a
 * half-empty cache costs what its used part does; the bindings of each (R, G) are made once and
 * reused (the same shapes and addresses at every step of that size).
 */
export class SlotBatch {
  readonly rows: (SlotRow | undefined)[];
  /** The sequence that holds each group; `live` groups take part in decode steps. */
  readonly groups: ({ seq: Sequence; live: boolean } | undefined)[];
  private readonly owned: Value[] = [];
  private readonly device: Record<string, Value> = {};
  private readonly caches: { key: Value; value: Value }[];
  private readonly bound = new Map<string, Bound>();
  private latest: Bound | undefined; // the bindings the latest step ran with
  private chosen: Bound | undefined; // between choose() and advance()
  private parity = 0; // which `seen` / `counts` buffer the next step reads
  private readonly uncaptured = RunOptions.create(NOT_CAPTURED);
  /** The settings on the device are for these rows and groups, unless something changed since. */
  private settingsChanged = true;
  private settingsSize = '';

  constructor(
    private readonly s: StepSessions,
    private readonly c: AnoleConfig,
    readonly capacity: SlotCapacity,
    /** Round each decode size (rows, groups) up to a power of two, at most the slots (StepGeneratorOptions.roundSizes). */
    private readonly roundSizes = false,
  ) {
    const S = capacity.slots;
    const V = c.vocabSize;
    this.rows = new Array(S).fill(undefined);
    this.groups = new Array(S).fill(undefined);
    const allocate = (dims: number[], type: ElementType) => this.own(Value.allocate(s.allocator, dims, type));
    const cacheDims = [S, c.numKeyValueHeads, capacity.context, cacheHeadDim(c.headDim)];
    this.caches = Array.from({ length: c.numHiddenLayers }, () => ({ key: allocate(cacheDims, s.floatType), value: allocate(cacheDims, s.floatType) }));
    this.device.hidden = allocate([S, 1, c.hiddenSize], s.floatType);
    this.device.ids = allocate([S, 1], 'int64');
    this.device.seenA = allocate([S, V], 'bool');
    this.device.seenB = allocate([S, V], 'bool');
    this.device.countsA = allocate([S, V], 'float32');
    this.device.countsB = allocate([S, V], 'float32');
    this.device.token = allocate([S], 'int64');
    for (const name of STEP_UPLOADS) this.device[name] = allocate([S], uploadType(name));
  }

  /** Slots free now. */
  get freeSlots(): number {
    return this.rows.filter((r) => !r).length;
  }

  /**
   * Reserves one group and a slot per role for a sequence (the lowest free): returns the group, the
   * index of the sequence's token in choose()'s result until it is freed; undefined when they are not free.
   */
  reserve(seq: Sequence, roles: RowRole[]): number | undefined {
    const group = this.groups.indexOf(undefined);
    const slots = this.rows.flatMap((r, i) => (r ? [] : [i])).slice(0, roles.length);
    if (group < 0 || slots.length < roles.length) return undefined;
    this.groups[group] = { seq, live: false };
    roles.forEach((role, i) => (this.rows[slots[i]] = { seq, role, length: 0, active: false }));
    return group;
  }

  /** Frees a sequence's group and slots. */
  free(seq: Sequence): void {
    this.rows.forEach((r, i) => r?.seq === seq && (this.rows[i] = undefined));
    this.groups.forEach((g, i) => g?.seq === seq && (this.groups[i] = undefined));
    this.settingsChanged = true;
  }

  slotOf(seq: Sequence, role: RowRole): number {
    return this.rows.findIndex((r) => r?.seq === seq && r.role === role);
  }

  /** A group takes part in decode steps (its rows prefilled), or stops. */
  setLive(seq: Sequence, live: boolean): void {
    const g = this.groups.find((x) => x?.seq === seq)!;
    if (g.live !== live) this.settingsChanged = true;
    g.live = live;
  }

  /** A row stops taking part; its cache is dropped (a guidance row outside an image). */
  retire(slot: number): void {
    const r = this.rows[slot]!;
    if (r.active) this.settingsChanged = true;
    Object.assign(r, { active: false, length: 0 });
  }

  /**
   * Writes `tokens` into a slot's cache after what it holds (a run of the step graph with R = 1 on a
   * view of the slot; GroupQueryAttention continues a prompt from its past), leaving the last one's
   * hidden state for the head.
   */
  prefill(slot: number, tokens: number[]): void {
    const row = this.rows[slot]!;
    const end = row.length + tokens.length;
    if (end > this.capacity.context) throw new Error(`engine v2: ${end} tokens do not fit a ${this.capacity.context}-token cache slot`);
    const views: Value[] = [];
    const view = (v: Value) => (views.push(v), v);
    const binding = new IoBinding(this.s.step);
    try {
      // a prefill is not a decode step: its ids and length go in from host memory, ONNX Runtime copies them
      binding.bindInput(STEP_INPUTS.inputIds, view(Value.fromArray(BigInt64Array.from(tokens, BigInt), [1, tokens.length])));
      binding.bindInput(STEP_INPUTS.seqlensK, view(Value.fromArray(Int32Array.of(end - 1), [1])));
      binding.bindInput(STEP_INPUTS.totalSequenceLength, view(Value.fromArray(Int32Array.of(end), [])));
      this.bindCache(binding, (buffer) => view(this.slice(buffer, slot, 1)));
      binding.bindOutput(STEP_HIDDEN, view(this.slice(this.device.hidden, slot, 1)));
      binding.run(this.uncaptured);
    } finally {
      binding.release();
      for (const v of views.reverse()) v.release();
    }
    this.s.stats.runs++;
    this.s.stats.bytesIn += tokens.length * 8 + 8;
    row.length = end;
  }

  /** A prefilled row takes part from the next step (with its sequence's other rows: a lone one would step alone). */
  activate(slot: number): void {
    const r = this.rows[slot]!;
    if (!r.active) this.settingsChanged = true;
    r.active = true;
  }

  /**
   * One token per live group (pad for the others): upload the step's numbers, the head, download the
   * tokens. advance() then runs the decoder on them; the caller hands the tokens out in between, so a
   * reader does not wait for a decoder step its token does not need.
   */
  choose(head: HeadKind): number[] {
    if (this.chosen) throw new Error('SlotBatch.choose: the previous tokens were not advanced');
    const b = (this.latest = this.bindingsFor(this.size(this.mark(this.rows)), this.size(this.mark(this.groups))));
    if (this.settingsChanged || this.settingsSize !== `${b.R}x${b.G}`) this.uploadSettings(b.R, b.G);
    const h = b.host;
    for (let g = 0; g < b.G; g++) {
      const x = this.groups[g];
      const s = x?.live ? x.seq : undefined;
      h[H.imageCount][g] = BigInt(s?.imageCount ?? -1);
      h[H.remaining][g] = BigInt(s?.remaining ?? 0);
      h[H.done][g] = Number(!s || s.done);
      h[H.uniform][g] = !s || s.done ? 0 : s.uniforms.peek(1)[0];
    }
    // a row that takes part writes its token at position `length`; the others write there too (a
    // position nothing reads yet: the next prefill chunk or step overwrites it), free slots at 0
    for (let i = 0; i < b.R; i++) h[STEP_INPUTS.seqlensK][i] = this.rows[i]?.length ?? 0;
    b.upload.run();
    b.head[head][this.parity]!.run(b.graphs.head[this.parity]);
    b.download.run();
    this.parity ^= 1; // the head wrote the other `seen` / `counts` buffer: the next head reads it
    this.chosen = b;
    const tokens = Array.from(h.token, Number);
    const live = this.groups.filter((x) => x?.live && !x.seq.done);
    for (const x of live) x!.seq.uniforms.consume(1);
    const stats = this.s.stats;
    stats.runs += 3;
    if (head === 'image') stats.imageHeadRuns++;
    stats.bytesIn += STEP_UPLOADS.reduce((n, name) => n + h[name].byteLength, 0);
    stats.bytesOut += h.token.byteLength;
    stats.tokens += live.length;
    return tokens;
  }

  /** The decoder step on the chosen tokens: each taking part row's cache grows by one. */
  advance(): void {
    const b = this.chosen;
    if (!b) throw new Error('SlotBatch.advance: no tokens were chosen');
    this.chosen = undefined;
    b.step.run(b.graphs.step);
    for (const r of this.rows) if (r?.active) r.length++;
    this.s.stats.runs++;
    this.s.stats.steps++;
  }

  /** What the decode runs of the latest step are bound to (test/step-generator-bindings.test.ts). */
  describeLatest(): { R: number; G: number; bindings: { step: IoBinding; heads: (IoBinding | undefined)[] }; graphIds: { step: string; head: string[] } } | undefined {
    const b = this.latest;
    return b && { R: b.R, G: b.G, bindings: { step: b.step, heads: [...b.head.full, ...b.head.image] }, graphIds: graphIdsOf(b) };
  }

  /** The CUDA graph ids every batch size's runs use, and the prefills' (test/step-generator-bindings.test.ts). */
  graphIds(): { sizes: { R: number; G: number; step: string; head: string[] }[]; prefill: string } {
    return { sizes: [...this.bound.values()].map((b) => ({ R: b.R, G: b.G, ...graphIdsOf(b) })), prefill: this.uncaptured.config.gpu_graph_id };
  }

  /** The size bound for `n` rows or groups: n, or with rounded sizes the next power of two (at most the slots). */
  private size(n: number): number {
    return this.roundSizes ? Math.min(this.capacity.slots, 2 ** Math.ceil(Math.log2(n))) : n;
  }

  /** One past the highest entry in use. */
  private mark(xs: unknown[]): number {
    for (let i = xs.length - 1; i >= 0; i--) if (xs[i]) return i + 1;
    return 1;
  }

  /** The per-group settings and each group's `seen` / `counts`, uploaded when the rows that take part change. */
  private uploadSettings(R: number, G: number): void {
    const settings = groupSettings(this.c, this.rows.slice(0, R), this.groups.slice(0, G), this.s.imageColumns);
    const binding = new IoBinding(this.s.copySettings);
    const views: Value[] = [];
    try {
      for (const [name, data, dims] of settings) {
        const source = Value.fromArray(data, dims, data instanceof Uint8Array ? 'bool' : undefined);
        views.push(source);
        binding.bindInput(name, source);
        const target = this.slice(this.settingValue(name, dims.slice(1), source.elementType), 0, dims[0]);
        views.push(target);
        binding.bindOutput(copyName(name), target);
      }
      binding.run();
    } finally {
      binding.release();
      for (const v of views.reverse()) v.release();
    }
    this.s.stats.runs++;
    this.s.stats.bytesIn += settings.reduce((n, [, data]) => n + data.byteLength, 0);
    this.settingsChanged = false;
    this.settingsSize = `${R}x${G}`;
  }

  /** A setting's buffer for every slot or group ([slots, …inner]; made the first time). */
  private settingValue(name: string, inner: number[], type: ElementType): Value {
    const key = name === H.seen ? (this.parity === 0 ? 'seenA' : 'seenB') : name === H.counts ? (this.parity === 0 ? 'countsA' : 'countsB') : `setting:${name}`;
    this.device[key] ??= this.own(Value.allocate(this.s.allocator, [this.capacity.slots, ...inner], type));
    return this.device[key];
  }

  /** The decode runs over the first R slots and G groups, bound the first time that size steps. */
  private bindingsFor(R: number, G: number): Bound {
    const key = `${R}x${G}`;
    const known = this.bound.get(key);
    if (known) return known;
    if (this.settingsChanged) this.uploadSettings(R, G); // makes the settings' buffers
    const values: Value[] = [];
    const keep = (v: Value) => (values.push(v), v);
    const d = (name: string, n: number) => keep(this.slice(this.device[name], 0, n));
    const [hidden, ids, token] = [d('hidden', R), d('ids', R), d('token', G)];
    const seen = [d('seenA', G), d('seenB', G)];
    const counts = [d('countsA', G), d('countsB', G)];
    const uploads = Object.fromEntries(STEP_UPLOADS.map((name) => [name, d(name, name === STEP_INPUTS.seqlensK ? R : G)]));
    // GroupQueryAttention reads total_sequence_length on the host (its kernels declare it a CPU input);
    // each row's length comes from seqlens_k, so the slot's capacity serves every step
    const total = keep(Value.fromArray(Int32Array.of(this.capacity.context), []));

    const step = new IoBinding(this.s.step);
    step.bindInput(STEP_INPUTS.inputIds, ids);
    step.bindInput(STEP_INPUTS.seqlensK, uploads[STEP_INPUTS.seqlensK]);
    step.bindInput(STEP_INPUTS.totalSequenceLength, total);
    this.bindCache(step, (buffer) => keep(this.slice(buffer, 0, R)));
    step.bindOutput(STEP_HIDDEN, hidden);

    // per group, but row_group: per row
    const settingView = (name: string) => keep(this.slice(this.device[`setting:${name}`], 0, name === I.rowGroup ? R : G));
    const headBinding = (session: Session | undefined, head: HeadKind, parity: number) => {
      if (!session) return undefined;
      const binding = new IoBinding(session);
      binding.bindInput(H.hidden, hidden);
      for (const name of [H.imageCount, H.remaining, H.done, H.uniform]) binding.bindInput(name, uploads[name]);
      binding.bindInput(H.seen, seen[parity]);
      binding.bindInput(H.counts, counts[parity]);
      for (const name of settingNames(head)) binding.bindInput(name, settingView(name === I.bias && head === 'image' ? IMAGE_BIAS : name));
      binding.bindOutput(HEAD_OUTPUTS.token, token);
      binding.bindOutput(HEAD_OUTPUTS.rowIds, ids);
      binding.bindOutput(HEAD_OUTPUTS.nextSeen, seen[parity ^ 1]);
      binding.bindOutput(HEAD_OUTPUTS.nextCounts, counts[parity ^ 1]);
      return binding;
    };
    const host = {
      [H.imageCount]: new BigInt64Array(G),
      [H.remaining]: new BigInt64Array(G),
      [H.done]: new Uint8Array(G),
      [H.uniform]: new Float32Array(G),
      [STEP_INPUTS.seqlensK]: new Int32Array(R),
      token: new BigInt64Array(G),
    } as HostArrays;
    const upload = new IoBinding(this.s.copyStep);
    for (const name of STEP_UPLOADS) {
      const source = keep(Value.fromArray(host[name], [host[name].length], host[name] instanceof Uint8Array ? 'bool' : undefined));
      upload.bindInput(name, source).bindOutput(copyName(name), uploads[name]);
    }
    const download = new IoBinding(this.s.copyToken);
    download.bindInput(HEAD_OUTPUTS.token, token).bindOutput(copyName(HEAD_OUTPUTS.token), keep(Value.fromArray(host.token, [G])));
    // graph ids from 1 (0 is ONNX Runtime's default), distinct per size and, for the heads, per parity
    const n = this.bound.size;
    const graphs: Bound['graphs'] = {
      step: RunOptions.create({ gpu_graph_id: String(n + 1) }),
      head: [RunOptions.create({ gpu_graph_id: String(2 * n + 1) }), RunOptions.create({ gpu_graph_id: String(2 * n + 2) })],
    };
    const b: Bound = {
      R,
      G,
      host,
      graphs,
      step,
      head: {
        full: [headBinding(this.s.heads.full, 'full', 0), headBinding(this.s.heads.full, 'full', 1)],
        image: this.s.imageColumns ? [headBinding(this.s.heads.image, 'image', 0), headBinding(this.s.heads.image, 'image', 1)] : [],
      },
      upload,
      download,
      values,
    };
    this.bound.set(key, b);
    this.s.stats.bindings++;
    return b;
  }

  /** Past and present of every layer bound to the same memory (`part` of each buffer). */
  private bindCache(binding: IoBinding, part: (buffer: Value) => Value): void {
    for (let l = 0; l < this.c.numHiddenLayers; l++) {
      const names = cacheNames(l);
      const [k, v] = [part(this.caches[l].key), part(this.caches[l].value)];
      binding.bindInput(names.pastKey, k).bindOutput(names.presentKey, k);
      binding.bindInput(names.pastValue, v).bindOutput(names.presentValue, v);
    }
  }

  /** Entries [first, first + n) of a [slots, …] buffer, as a view (released by whoever keeps it). */
  private slice(buffer: Value, first: number, n: number): Value {
    const entryBytes = buffer.byteLength / buffer.dims[0];
    return buffer.view(first * entryBytes, [n, ...buffer.dims.slice(1)]);
  }

  private own(v: Value): Value {
    this.owned.push(v);
    return v;
  }

  release(): void {
    for (const b of this.bound.values()) {
      for (const binding of [b.step, ...b.head.full, ...b.head.image, b.upload, b.download]) binding?.release();
      for (const options of [b.graphs.step, ...b.graphs.head]) options.release();
      for (const v of b.values.reverse()) v.release();
    }
    this.bound.clear();
    this.latest = undefined;
    this.uncaptured.release();
    for (const v of this.owned.reverse()) v.release();
    this.owned.length = 0;
  }
}

function graphIdsOf(b: Bound): { step: string; head: string[] } {
  return { step: b.graphs.step.config.gpu_graph_id, head: b.graphs.head.map((o) => o.config.gpu_graph_id) };
}

function uploadType(name: (typeof STEP_UPLOADS)[number]): ElementType {
  return name === STEP_INPUTS.seqlensK ? 'int32' : name === H.done ? 'bool' : name === H.uniform ? 'float32' : 'int64';
}

/** The image head's bias (its columns only) is a buffer of its own beside the full head's. */
export const IMAGE_BIAS = 'logit_bias.image';

/** The head's per-group setting inputs (settingInputs' names) for a head. */
function settingNames(head: HeadKind): string[] {
  return [I.rowGroup, I.rowFull, I.rowImage, I.rowUncond, I.guided, I.scaleImage, I.scaleText, ...(head === 'full' ? [I.textAllowed] : []), I.allowBoi, I.temperature, I.topP, I.topK, I.greedy, I.penalty, I.presence, I.frequency, I.bias];
}

/**
 * The head's settings for the first R slots and G groups, and each live group's `seen` / `counts`,
 * as host arrays with their dims: uploaded when rows start or stop taking part. Free slots and
 * groups that do not take part get harmless values (their tokens are pad, their rows' ids unread).
 */
function groupSettings(c: AnoleConfig, rows: (SlotRow | undefined)[], slots: ({ seq: Sequence; live: boolean } | undefined)[], imageColumns: [number, number] | undefined): [string, ArrayBufferView, number[]][] {
  const G = slots.length;
  const R = rows.length;
  const V = c.vocabSize;
  const groups = slots.map((x) => (x?.live ? x.seq : undefined));
  const rowOf = (s: Sequence, role: RowRole) => rows.findIndex((r) => r?.seq === s && r.role === role);
  const fullRow = (s: Sequence | undefined) => (s ? rowOf(s, 'full') : 0);
  const guidanceOn = (s: Sequence | undefined, role: RowRole) => (s?.hasGuidanceRows && rows[rowOf(s, role)]?.active ? rowOf(s, role) : fullRow(s));
  const i64 = (xs: number[]) => BigInt64Array.from(xs, BigInt);
  const off = { temperature: 1, topP: 1, topK: 0, greedy: true };
  const settings = (s: Sequence | undefined) => (s ? [s.request.text, s.request.image] : [off, off]);
  const perGroup = <T>(f: (s: Sequence | undefined) => T[]) => groups.flatMap(f);
  const perVocab = (pick: (s: Sequence) => ArrayLike<number>, Array: Uint8ArrayConstructor | Float32ArrayConstructor) => {
    const out = new Array(G * V);
    groups.forEach((s, g) => s && out.set(pick(s), g * V));
    return out;
  };
  const out: [string, ArrayBufferView, number[]][] = [
    [I.rowGroup, i64(rows.map((r) => Math.max(0, r ? slots.findIndex((x) => x?.seq === r.seq) : 0))), [R]],
    [I.rowFull, i64(groups.map(fullRow)), [G]],
    [I.rowImage, i64(groups.map((s) => guidanceOn(s, 'image'))), [G]],
    [I.rowUncond, i64(groups.map((s) => guidanceOn(s, 'uncond'))), [G]],
    [I.guided, Uint8Array.from(groups, (s) => Number(s?.guided ?? false)), [G]],
    [I.scaleImage, Float32Array.from(groups, (s) => s?.request.guidance.image ?? 1), [G]],
    [I.scaleText, Float32Array.from(groups, (s) => s?.request.guidance.text ?? 1), [G]],
    [I.textAllowed, perVocab((s) => s.textAllowed, Uint8Array), [G, V]],
    [I.allowBoi, Uint8Array.from(groups, (s) => Number(s?.request.constraints.allowBoi ?? false)), [G]],
    [I.temperature, Float32Array.from(perGroup((s) => settings(s).map((x) => x.temperature))), [G, 2]],
    [I.topP, Float32Array.from(perGroup((s) => settings(s).map((x) => x.topP))), [G, 2]],
    [I.topK, i64(perGroup((s) => settings(s).map((x) => x.topK))), [G, 2]],
    [I.greedy, Uint8Array.from(perGroup((s) => settings(s).map((x) => Number(x.greedy)))), [G, 2]],
    [I.penalty, Float32Array.from(groups, (s) => s?.request.repetitionPenalty ?? 1), [G]],
    [I.presence, Float32Array.from(groups, (s) => s?.request.presencePenalty ?? 0), [G]],
    [I.frequency, Float32Array.from(groups, (s) => s?.request.frequencyPenalty ?? 0), [G]],
    [I.bias, perVocab((s) => s.bias, Float32Array), [G, V]],
    [H.seen, perVocab((s) => s.seen, Uint8Array), [G, V]],
    [H.counts, perVocab((s) => s.counts, Float32Array), [G, V]],
  ];
  if (imageColumns) {
    const [first, end] = imageColumns;
    const columns = new Float32Array(G * (end - first));
    groups.forEach((s, g) => s && columns.set(s.bias.subarray(first, end), g * (end - first)));
    out.push([IMAGE_BIAS, columns, [G, end - first]]);
  }
  return out;
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

/** What the latest decode step's runs (the step and the heads) are bound to. */
export function describeBindings(batch: SlotBatch): BoundValue[] {
  const latest = batch.describeLatest();
  if (!latest) return [];
  const out: BoundValue[] = [];
  const runs: [BoundValue['run'], (IoBinding | undefined)[]][] = [['step', [latest.bindings.step]], ['head', latest.bindings.heads]];
  for (const [run, bindings] of runs) {
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
