import { loadImageProcessorConfig, type ImageProcessorConfig } from '../../model/preprocess/preprocessor-config.ts';
import { AnoleTokenizer } from '../../model/preprocess/tokenizer.ts';
import { EngineThread, type CodecLike, type GeneratorLike } from '../engine/engine-thread.ts';
import type { SessionConfig } from '../onnx/session.ts';
import { assertGpuIfRequired } from './require-gpu.ts';
import type { CacheSettings } from '../engine/slot-capacity.ts';

export interface LoadModelOptions extends SessionConfig, CacheSettings {
  /** Run the model on its own thread (default), so the event loop stays free while chunks run. */
  thread?: boolean;
}

/** A model loaded once for many jobs: what runJobs runs them on. */
export interface LoadedModel {
  /** In-process (Generator, ImageCodec) or on an engine thread (EngineThread). */
  generator: GeneratorLike;
  codec: CodecLike;
  decodeText: (ids: number[]) => Promise<string>;
  imageConfig: ImageProcessorConfig;
}

/** Releases a loaded model's sessions (and its engine thread, when it has one). */
export async function releaseModel(model: Pick<LoadedModel, 'generator' | 'codec'>): Promise<void> {
  await Promise.all([model.generator.release(), model.codec.release()]);
}

/**
 * Loads a model once for many jobs, from a Hugging Face checkpoint directory or a bundle made by
 * `anole convert`: a bad checkpoint fails here, with one CheckpointError. It needs no storage (the
 * worker starts the load before it connects any).
 */
export async function loadModel(modelDir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const { thread = true, ...session } = opts;
  // No silent CPU: a model that must run on CUDA (ANOLE_REQUIRE_GPU=1, a --target cuda bundle) is refused here,
  // in one line saying why, when CUDA cannot start; nothing has been loaded yet.
  await assertGpuIfRequired(modelDir);
  // The tokenizer (about 0.25 s for a 2.5 MB tokenizer.json) loads here while the engine thread
  // starts and makes its sessions. A bad tokenizer stops the thread at once rather than after
  // minutes of loading weights; whichever fails, nothing is left running.
  const stop = new AbortController();
  const loadEngine = async (): Promise<Pick<LoadedModel, 'generator' | 'codec'>> => {
    if (thread) return EngineThread.start(modelDir, session, { signal: stop.signal });
    // in process: ONNX Runtime is imported only here, so a main thread with an engine thread never loads it
    const [{ openModel }, { loadEngine }, { ImageCodec }] = await Promise.all([
      import('../engine/model-source.ts'),
      import('../engine/generation-engine.ts'),
      import('../engine/image-codec.ts'),
    ]);
    const model = openModel(modelDir);
    const [generator, codec] = await Promise.all([loadEngine(model, session), ImageCodec.load(model, session)]);
    return { generator, codec };
  };
  const engineLoading = loadEngine(); // first: the tokenizer's load starts with work that blocks this thread
  const loadTokenizer = AnoleTokenizer.load(modelDir).catch((e) => {
    stop.abort(e);
    throw e;
  });
  const [tokenizerLoad, engineLoad] = await Promise.allSettled([loadTokenizer, engineLoading]);
  if (tokenizerLoad.status === 'rejected' || engineLoad.status === 'rejected') {
    if (engineLoad.status === 'fulfilled') await releaseModel(engineLoad.value);
    throw tokenizerLoad.status === 'rejected' ? tokenizerLoad.reason : (engineLoad as PromiseRejectedResult).reason;
  }
  const [tokenizer, engine] = [tokenizerLoad.value, engineLoad.value];
  return {
    ...engine,
    decodeText: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
    imageConfig: loadImageProcessorConfig(modelDir),
  };
}
