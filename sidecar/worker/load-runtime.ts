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
  const tokenizer = await AnoleTokenizer.load(modelDir);
  let engine: Pick<JobRuntime, 'generator' | 'codec'>;
  if (thread) {
    engine = await EngineThread.start(modelDir, session);
  } else {
    const model = openModel(modelDir);
    const [generator, codec] = await Promise.all([Generator.load(model, session), ImageCodec.load(model, session)]);
    engine = { generator, codec };
  }
  return {
    ...engine,
    decodeText: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
    imageConfig: loadImageProcessorConfig(modelDir),
    store,
  };
}
