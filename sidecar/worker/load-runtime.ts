import type { BlobStore } from '../../contract/blob-store.ts';
import { loadImageProcessorConfig } from '../../functions/preprocess/preprocessor-config.ts';
import { AnoleTokenizer } from '../../functions/preprocess/tokenizer.ts';
import { Generator } from '../engine/generator.ts';
import { ImageCodec } from '../engine/image-codec.ts';
import type { SessionConfig } from '../onnx/session.ts';
import { openCheckpoint } from '../weights/checkpoint.ts';
import { validateCheckpoint } from '../weights/validate-checkpoint.ts';
import type { JobRuntime } from './run-jobs.ts';

/** Loads a checkpoint once for many jobs: a bad checkpoint fails here, with one CheckpointError. */
export async function loadRuntime(modelDir: string, store: BlobStore, session: SessionConfig = {}): Promise<JobRuntime> {
  const ckpt = openCheckpoint(modelDir);
  validateCheckpoint(ckpt);
  const [generator, codec, tokenizer] = await Promise.all([Generator.load(ckpt, session), ImageCodec.load(ckpt, session), AnoleTokenizer.load(modelDir)]);
  return {
    generator,
    codec,
    decodeText: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
    imageConfig: loadImageProcessorConfig(modelDir),
    store,
  };
}
