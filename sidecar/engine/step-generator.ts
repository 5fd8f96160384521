import type { AnoleConfig } from '../../model/config.ts';
import { imageVocabulary } from '../../model/vocabulary.ts';
import { buildCopyGraph } from '../graphs/copy-graph.ts';
import { imageTokenRange, settingInputs, type HeadKind } from '../graphs/head-inputs.ts';
import { HEAD_INPUTS as H, HEAD_OUTPUTS } from '../graphs/head-graph.ts';
import { activationType, type Precision } from '../graphs/precision.ts';
import { STEP_INPUTS } from '../graphs/step-decoder.ts';
import { DataType, type BuiltModel, type DataTypeId, type Dim } from '../onnx/graph-builder.ts';
import { defaultExecutionProviders, providerSessionOptions, type SessionConfig } from '../onnx/session.ts';
import { Allocator, cudaProviderOptionsString, MemoryInfo, Session, type ElementType } from '../ort-capi/index.ts';
import { cudaOptionsFromEnv } from './cuda-options.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import type { GenerateOptions, TransferStats } from './generation-engine.ts';
import { asModelSource, type ModelSource } from './model-source.ts';
import { Scheduler } from './scheduler.ts';
import type { GenerationEvent, Sequence } from './sequence.ts';
import { describeBindings, IMAGE_BIAS, SlotBatch, type BoundValue, type SlotCapacity } from './slot-batch.ts';
import { slotCapacity, type CacheSettings } from './slot-capacity.ts';

export interface StepGeneratorOptions extends SessionConfig, CacheSettings {
  /** Load the image-only head (default true). */
  imageHead?: boolean;
  log?: (line: string) => void;
  /**
   * Round each decode size (rows, groups) up to a power of two, at most the slots: a few sizes, so a
   * few CUDA graphs to capture, instead of one per size the batch passes through (default: on with CUDA graphs).
   */
  roundSizes?: boolean;
}

/**
 * Engine v2 (docs/engine-v2.md): the KV cache never leaves ONNX Runtime. Every sequence owns slots
 * of one preallocated cache per layer, [slots, Hkv, context, Dc], which the step graph updates in
 * place. A decode step is four runs through ONNX Runtime's C API (sidecar/ort-capi), bound once per
 * size of the batch (slot-batch.ts):
 *
 *   upload   the step's few numbers per group and each slot's length, host → device
 *   head     slots' last hidden states → one token per group (and each slot's next input id)
 *   download the tokens, device → host
 *   step     those ids → every layer's cache slot written in place → the next hidden states
 *
 * Calls join a running batch (scheduler.ts): their sequences take free slots, prefill, decode with
 * the others and free their slots when they end. Guidance rows join (prefilled into their slots)
 * when an image opens and idle when it closes. Every buffer the head and the step read or write is memory ONNX
 * Runtime allocated for the step session: the GPU's on CUDA, so nothing of a decode step but the
 * upload and the download crosses to the host.
 */
export class StepGenerator {
  readonly stats: TransferStats = { runs: 0, imageHeadRuns: 0, bytesIn: 0, bytesOut: 0, tokens: 0, bindings: 0, steps: 0 };
  private readonly imageIds: Set<number>;
  private readonly codeOf: Int32Array;
  private readonly imageColumns: [number, number] | undefined;
  private readonly allocator: Allocator;
  private readonly scheduler: Scheduler;
  private batch: SlotBatch | undefined;

  private constructor(
    readonly config: AnoleConfig,
    private readonly step: Session,
    private readonly heads: { full: Session; image?: Session },
    private readonly copies: { step: Session; token: Session; settings: Session },
    /** Where the decode buffers live: the memory of the step session's first provider. */
    memory: MemoryInfo,
    /** The cache's and hidden states' element type: float32 on the CPU, fp16 / bf16 on CUDA. */
    readonly floatType: ElementType,
    /** Cache slots and tokens per slot. */
    readonly capacity: SlotCapacity,
    prefillChunk: number,
    private readonly roundSizes: boolean,
  ) {
    const vocab = imageVocabulary(config);
    this.imageIds = new Set(vocab.codeToToken);
    this.codeOf = vocab.tokenToCode;
    this.imageColumns = heads.image ? imageTokenRange(vocab.codeToToken) : undefined;
    this.allocator = Allocator.forSession(step, memory);
    const drop = () => {
      this.batch?.release();
      this.batch = undefined;
    };
    this.scheduler = new Scheduler(config, () => this.slots(), drop, this.imageIds, this.codeOf, (live) => this.headFor(live), { prefillChunk });
  }

  static async load(model: Checkpoint | ModelSource, opts: StepGeneratorOptions = {}): Promise<StepGenerator> {
    const source = asModelSource(model);
    // a model built for the CPU (a Hugging Face directory, a --target cpu bundle: float32 graphs) runs
    // there, whatever else the machine has: GroupQueryAttention has no float32 CUDA kernel
    const builtForCpu = activationType(source.precision) === DataType.FLOAT;
    const providers = providerSessionOptions(opts.executionProviders ?? (builtForCpu ? ['cpu'] : await defaultExecutionProviders()));
    const cuda = providers.executionProviders.includes('cuda') ? cudaOptionsFromEnv() : undefined;
    if (cuda && builtForCpu) {
      throw new Error(`${source.dir}: float32 on CUDA has no engine (GroupQueryAttention has no float32 CUDA kernel); convert it with \`anole convert --target cuda --dtype fp16\` (or bf16), or run it on the CPU`);
    }
    const step = source.graph('step')!; // a bad checkpoint throws its CheckpointError here
    const config = source.checkpoint.config!;
    // Each session has its own intra-op pool, and a pool's threads spin after a run: the head's would
    // spin through the step's run and the step's through the head's, both on the same cores (on 2 cores
    // it halved the speed: docs/engine-v2.md). The copy graphs run on one thread.
    const sessionConfig = { ...Object.fromEntries(Object.entries(providers.config).map(([k, v]) => [`session.${k}`, v])), 'session.intra_op.allow_spinning': '0' };
    // CUDA graphs (ANOLE_CUDA_GRAPH=1) for the step and the heads only: the copy sessions read host memory
    const open = (graph: BuiltModel, threads = opts.intraOpNumThreads, captured = true) =>
      Session.fromBytes(graph.bytes, { intraOpThreads: threads, externalDataDir: graph.externalDir, config: sessionConfig, cuda: cuda && { ...cuda, enable_cuda_graph: captured && cuda.enable_cuda_graph }, profilePrefix: opts.profileFilePrefix });
    const opened: Session[] = [];
    const track = (s: Session) => (opened.push(s), s);
    try {
      const stepSession = track(open(step));
      if (cuda) (opts.log ?? ((line) => console.error(line)))(`onnxruntime: engine v2 on CUDA, provider options ${cudaProviderOptionsString(cuda)}`);
      const image = (opts.imageHead ?? true) ? source.graph('head-image') : undefined;
      const heads = { full: track(open(source.graph('head-full')!)), image: image && track(open(image)) };
      const copies = copyGraphs(config, image !== undefined);
      const copySessions = { step: track(open(copies.step, 1, false)), token: track(open(copies.token, 1, false)), settings: track(open(copies.settings, 1, false)) };
      const memory = cuda ? MemoryInfo.cuda(cuda.device_id) : MemoryInfo.cpu();
      const floatType = activationElementType(source.precision);
      return new StepGenerator(config, stepSession, heads, copySessions, memory, floatType, slotCapacity(config, floatType, opts), opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK, opts.roundSizes ?? cuda?.enable_cuda_graph === true);
    } catch (e) {
      for (const s of opened.reverse()) s.release();
      throw e;
    }
  }

  /**
   * Runs requests with whatever else is running (continuous batching, scheduler.ts): concurrent
   * calls share the decode steps. Events are this call's, numbered by its own requests.
   */
  generate(requests: SequenceRequest[], opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    return this.scheduler.generate(requests, opts);
  }

  /** Sequences waiting for cache slots and those holding them, and the slots there are. */
  get load(): { queued: number; admitted: number; slots: number; freeSlots: number } {
    return { ...this.scheduler.load, slots: this.capacity.slots, freeSlots: this.batch?.freeSlots ?? this.capacity.slots };
  }

  /** The image head when every live group is drawing an image (it cannot produce eoi or text). */
  private headFor(live: Sequence[]): HeadKind {
    const N = this.config.imageSeqLength;
    return this.heads.image && live.every((s) => s.imageCount >= 0 && s.imageCount < N) ? 'image' : 'full';
  }

  /** The cache slots, allocated at the first call and kept (again after a failed run). */
  private slots(): SlotBatch {
    this.batch ??= new SlotBatch(
      { step: this.step, heads: this.heads, copyStep: this.copies.step, copyToken: this.copies.token, copySettings: this.copies.settings, allocator: this.allocator, imageColumns: this.imageColumns, floatType: this.floatType, stats: this.stats },
      this.config,
      this.capacity,
      this.roundSizes,
    );
    return this.batch;
  }

  /** The CUDA graph id of each batch size's decode runs, and the prefills' (test/step-generator-bindings.test.ts). */
  get decodeGraphs() {
    return this.batch?.graphIds();
  }

  /** What the latest decode step was bound to (test/step-generator-bindings.test.ts). */
  get decodeBindings(): BoundValue[] {
    return this.batch ? describeBindings(this.batch) : [];
  }

  async release(): Promise<void> {
    this.batch?.release();
    this.batch = undefined;
    this.allocator.release();
    for (const s of [this.step, this.heads.full, this.heads.image, this.copies.step, this.copies.token, this.copies.settings]) s?.release();
  }
}

/** Prompt tokens prefilled between two decode steps (scheduler.ts): a few steps' time on the small preset (docs/engine-v2.md). */
const DEFAULT_PREFILL_CHUNK = 256;

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

