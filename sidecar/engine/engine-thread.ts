import '../onnx/telemetry-off.ts'; // before any thread's first session: the library reads the process's own environment
import { Worker } from 'node:worker_threads';
import type { AnoleConfig, VQConfig } from '../../model/config.ts';
import type { SessionConfig } from '../onnx/session.ts';
import type { CacheSettings } from './slot-capacity.ts';
import { readCheckpointConfig } from '../weights/checkpoint.ts';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import type { GenerateOptions, TransferStats } from './generation-engine.ts';
import type { GenerationEvent } from './sequence.ts';

/** Messages to the engine thread. */
export type ToThread =
  | { type: 'generate'; id: number; requests: Omit<SequenceRequest, 'signal'>[]; options: Omit<GenerateOptions, 'signal' | 'onAdmitted'> }
  | { type: 'abort'; id: number; sequence: number }
  | { type: 'encodeTokens'; id: number; pixelValues: Float32Array; batch: number }
  | { type: 'decode'; id: number; codes: number[][] };

/** Messages from the engine thread. */
export type FromThread =
  | { type: 'ready'; capacity: EngineCapacity }
  | { type: 'failed'; message: string }
  | { type: 'event'; id: number; event: GenerationEvent }
  | { type: 'admitted'; id: number; sequence: number }
  | { type: 'end'; id: number; stats: TransferStats }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; message: string };

/** The engine's cache: slots (rows) and tokens per slot. */
export interface EngineCapacity {
  slots: number;
  context: number;
}

/** What job runners need from the generator and the image codec, wherever they run. */
export interface GeneratorLike {
  readonly config: AnoleConfig;
  /** Its cache slots: overlapping generate calls share them (continuous batching). */
  readonly capacity: EngineCapacity;
  generate(requests: SequenceRequest[], opts?: GenerateOptions): AsyncGenerator<GenerationEvent>;
  release(): Promise<void>;
}
export interface CodecLike {
  readonly vq: VQConfig;
  readonly imageSeqLength: number;
  encodeTokens(pixelValues: Float32Array, batch: number): Promise<Int32Array[]>;
  decode(codes: ArrayLike<number>[]): Promise<Float32Array>;
  release(): Promise<void>;
}

/** The engine thread's own bundle, written beside the CLI's by `npm run build` (scripts/build-dist.ts). */
export const ENGINE_THREAD_BUNDLE = 'engine-thread.mjs';

/**
 * What the engine thread runs. From the sources, thread-bootstrap.js registers tsx (worker threads do
 * not inherit its loader) and imports workerData.entry; from a build, this module is inside a bundle
 * and the thread's bundle lies beside it, plain JavaScript that needs no tsx.
 */
function threadEntry(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('./thread-bootstrap.js', import.meta.url) : new URL(`./${ENGINE_THREAD_BUNDLE}`, import.meta.url);
}

/**
 * The generator and the image codec on a thread of their own (engine-thread-main.ts), behind the
 * same methods: session.run blocks its thread for a whole chunk, and the main thread must keep
 * answering HTTP requests, health checks and storage while a job runs.
 */
export class EngineThread {
  readonly generator: GeneratorLike;
  readonly codec: CodecLike;
  /** The engine's transfer counters as of the latest call that ended (they count every call). */
  lastStats: TransferStats | undefined;
  private nextId = 0;
  private readonly listeners = new Map<number, (m: FromThread) => void>();

  private constructor(
    private readonly worker: Worker,
    config: AnoleConfig,
    capacity: EngineCapacity,
  ) {
    worker.on('message', (m: FromThread) => {
      if ('id' in m) this.listeners.get(m.id)?.(m);
    });
    const call = <T>(message: ToThread): Promise<T> =>
      new Promise((resolve, reject) => {
        this.listeners.set(message.id, (m) => {
          this.listeners.delete(message.id);
          if (m.type === 'result') resolve(m.value as T);
          else if (m.type === 'error') reject(new Error(m.message));
        });
        worker.postMessage(message);
      });
    const [h, w] = config.vq.quantStateDims;
    this.codec = {
      vq: config.vq,
      imageSeqLength: h * w,
      encodeTokens: (pixelValues, batch) => call({ type: 'encodeTokens', id: this.nextId++, pixelValues, batch }),
      decode: (codes) => call({ type: 'decode', id: this.nextId++, codes: codes.map((c) => Array.from(c)) }),
      release: () => this.close(),
    };
    this.generator = { config, capacity, generate: (requests, opts) => this.generate(requests, opts), release: () => this.close() };
  }

  /**
   * Loads the checkpoint on a new thread; rejects with the checkpoint's error if it is bad, or with
   * the signal's reason (the thread stopped) when `signal` aborts first.
   */
  static async start(modelDir: string, session: SessionConfig & CacheSettings = {}, opts: { signal?: AbortSignal } = {}): Promise<EngineThread> {
    opts.signal?.throwIfAborted();
    const worker = new Worker(threadEntry(), { workerData: { entry: new URL('./engine-thread-main.ts', import.meta.url).href, modelDir, session } });
    // The config is read here while the thread starts, not sent back with 'ready': a structured
    // clone of its 65,536-entry vocabulary_map took 0.1–0.15 s of the start. The thread reads the
    // same file, so a bad one is normally reported by the thread's 'failed'.
    let config: AnoleConfig | Error | undefined;
    try {
      config = readCheckpointConfig(modelDir).config;
    } catch (e) {
      config = e as Error;
    }
    let onAbort: (() => void) | undefined;
    const first = await new Promise<FromThread>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      onAbort = () => worker.terminate().finally(() => reject(opts.signal!.reason));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    }).finally(() => opts.signal?.removeEventListener('abort', onAbort!));
    if (first.type !== 'ready' || !config || config instanceof Error) {
      await worker.terminate();
      if (first.type === 'failed') throw new Error(first.message);
      throw config instanceof Error ? config : new Error(`engine thread: unexpected ${first.type}${config ? '' : ' (no text decoder in the config)'}`);
    }
    return new EngineThread(worker, config, first.capacity);
  }

  private async *generate(requests: SequenceRequest[], opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
    const id = this.nextId++;
    const queue: FromThread[] = [];
    let wake: (() => void) | undefined;
    this.listeners.set(id, (m) => {
      if (m.type === 'admitted') return opts.onAdmitted?.(m.sequence); // when it happens, not when the reader next reads
      queue.push(m);
      wake?.();
    });
    // signals cannot cross threads: forward each abort as a message
    const abort = (sequence: number) => this.worker.postMessage({ type: 'abort', id, sequence } satisfies ToThread);
    const forward = requests.map((r, sequence) => {
      const onAbort = () => abort(sequence);
      r.signal?.addEventListener('abort', onAbort, { once: true });
      return () => r.signal?.removeEventListener('abort', onAbort);
    });
    const all = () => requests.forEach((_, sequence) => abort(sequence));
    let ended = false;
    opts.signal?.addEventListener('abort', all, { once: true });
    try {
      this.worker.postMessage({
        type: 'generate',
        id,
        requests: requests.map(({ signal: _signal, ...rest }) => rest),
        options: { chunkSize: opts.chunkSize },
      } satisfies ToThread);
      // aborted before the thread saw them: their listeners will never fire
      requests.forEach((r, sequence) => (r.signal?.aborted || opts.signal?.aborted) && abort(sequence));
      for (;;) {
        if (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        const m = queue.shift()!;
        if (m.type === 'event') yield m.event;
        else if (m.type === 'end' || m.type === 'error') ended = true;
        if (m.type === 'end') this.lastStats = m.stats;
        if (m.type === 'end') return;
        if (m.type === 'error') throw new Error(m.message);
      }
    } finally {
      // a reader that stopped early (an error in the job, a break) frees its sequences' cache slots now
      if (!ended) all();
      this.listeners.delete(id);
      forward.forEach((off) => off());
      opts.signal?.removeEventListener('abort', all);
    }
  }

  /** Ends the thread (and its sessions); safe to call more than once. */
  async close(): Promise<void> {
    this.closing ??= this.worker.terminate().then(() => undefined);
    await this.closing;
  }

  private closing: Promise<void> | undefined;
}
