import ort from 'onnxruntime-node';
import type { BuiltModel } from './graph-builder.ts';

export interface SessionConfig {
  /** Threads inside one operator; default: ONNX Runtime's choice (all cores). */
  intraOpNumThreads?: number;
  executionProviders?: string[];
}

/**
 * Creates an ONNX Runtime session from a built graph. The graph travels as bytes and its external
 * weights are read from `externalDir`: ONNX Runtime refuses external paths that are absolute or
 * leave the model's directory, so the directory is given as a session option instead.
 */
export async function createSession(model: BuiltModel, config: SessionConfig = {}): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    executionProviders: config.executionProviders ?? ['cpu'],
    ...(config.intraOpNumThreads ? { intraOpNumThreads: config.intraOpNumThreads } : {}),
    ...(model.externalDir ? { extra: { session: { model_external_initializers_file_folder_path: model.externalDir } } } : {}),
  };
  return ort.InferenceSession.create(model.bytes, options);
}
