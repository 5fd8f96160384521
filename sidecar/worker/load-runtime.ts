import type { BlobStore } from '../../contract/blob-store.ts';
import { loadImageProcessorConfig } from '../../functions/preprocess/preprocessor-config.ts';
import { AnoleTokenizer } from '../../functions/preprocess/tokenizer.ts';
import { EngineThread } from '../engine/engine-thread.ts';
import { Generator } from '../engine/generator.ts';
import { ImageCodec } from '../engine/image-codec.ts';
import { openModel } from '../engine/model-source.ts';
import type { SessionConfig } from '../onnx/session.ts';
import type { JobRuntime } from './run-jobs.ts';

export interface RuntimeOptions extends SessionConfig {
  /** Run the model on its own thread (default), so the event loop stays free while chunks run. */
  thread?: boolean;
}

/**
 * Loads a model once for many jobs, from a Hugging Face checkpoint directory or a bundle made by
 * `anole convert`: a bad checkpoint fails here, with one CheckpointError.
 */
export async function loadRuntime(modelDir: string, store: BlobStore, opts: RuntimeOptions = {}): Promise<JobRuntime> {
  const { thread = true, ...session } = opts;
  // The tokenizer (about 0.25 s for a 2.5 MB tokenizer.json) loads here while the engine thread
  // starts and makes its sessions. A bad tokenizer stops the thread at once rather than after
  // minutes of loading weights; whichever fails, nothing is left running.
  const stop = new AbortController();
  const loadEngine = async (): Promise<Pick<JobRuntime, 'generator' | 'codec'>> => {
    if (thread) return EngineThread.start(modelDir, session, { signal: stop.signal });
    const model = openModel(modelDir);
    const [generator, codec] = await Promise.all([Generator.load(model, session), ImageCodec.load(model, session)]);
    return { generator, codec };
  };
  const loadTokenizer = AnoleTokenizer.load(modelDir).catch((e) => {
    stop.abort(e);
    throw e;
  });
  const [tokenizerLoad, engineLoad] = await Promise.allSettled([loadTokenizer, loadEngine()]);
  if (tokenizerLoad.status === 'rejected' || engineLoad.status === 'rejected') {
    if (engineLoad.status === 'fulfilled') await Promise.all([engineLoad.value.generator.release(), engineLoad.value.codec.release()]);
    throw tokenizerLoad.status === 'rejected' ? tokenizerLoad.reason : (engineLoad as PromiseRejectedResult).reason;
  }
  const [tokenizer, engine] = [tokenizerLoad.value, engineLoad.value];
  return {
    ...engine,
    decodeText: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
    imageConfig: loadImageProcessorConfig(modelDir),
    store,
  };
}
