import './telemetry-off.ts';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { DataType, GraphBuilder, type BuiltModel } from './graph-builder.ts';

export interface SessionConfig {
  /** Threads inside one operator; default: ONNX Runtime's choice (all cores). */
  intraOpNumThreads?: number;
  /** Default: chooseExecutionProviders() (CUDA when it works here, else the CPU), decided once per process. */
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
    executionProviders: config.executionProviders ?? (await defaultExecutionProviders()),
    ...(config.intraOpNumThreads ? { intraOpNumThreads: config.intraOpNumThreads } : {}),
    ...(model.externalDir ? { extra: { session: { model_external_initializers_file_folder_path: model.externalDir } } } : {}),
  };
  return ort.InferenceSession.create(model.bytes, options);
}

export interface ProviderOptions {
  /** Where the one line about falling back to the CPU goes (default: stderr). */
  log?: (line: string) => void;
  /** onnxruntime-node's native directory, where an install with CUDA has its provider libraries. */
  bindingDir?: string;
  /** Throws when a CUDA session cannot be made (default: a one-node session on CUDA alone). */
  probe?: () => Promise<void>;
}

/**
 * CUDA when it works on this machine, else the CPU, said in one log line. Three things must hold:
 * this onnxruntime-node build knows the CUDA provider, its libraries were installed (the GPU image
 * installs them; `npm ci` here skips them), and a session can actually start on CUDA (driver, GPU,
 * cuDNN). The CPU stays listed after CUDA for the operators CUDA does not implement.
 */
export async function chooseExecutionProviders(opts: ProviderOptions = {}): Promise<string[]> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const cpu = (reason: string) => {
    log(`onnxruntime: running on the CPU (${reason})`);
    return ['cpu'];
  };
  if (!ort.listSupportedBackends().some((b) => b.name === 'cuda')) return cpu('this onnxruntime-node build has no CUDA provider');
  const library = path.join(opts.bindingDir ?? nativeBindingDir(), cudaProviderLibrary());
  if (!fs.existsSync(library)) return cpu(`no CUDA provider libraries: ${library} is missing`);
  try {
    await (opts.probe ?? probeCuda)();
  } catch (e) {
    return cpu(`CUDA did not start: ${String((e as Error).message).split('\n')[0]}`);
  }
  return ['cuda', 'cpu'];
}

let chosen: Promise<string[]> | undefined;

/** chooseExecutionProviders once per process: every session then agrees, and the line is logged once. */
export function defaultExecutionProviders(): Promise<string[]> {
  chosen ??= chooseExecutionProviders();
  return chosen;
}

/** Where onnxruntime-node keeps its native binding and the provider libraries for this platform. */
export function nativeBindingDir(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node'); // …/onnxruntime-node/dist/index.js
  return path.join(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

function cudaProviderLibrary(): string {
  return process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
}

/** y = x + x on the CUDA provider alone: creating it loads the provider, the driver and the device. */
async function probeCuda(): Promise<void> {
  const g = new GraphBuilder('cuda_probe');
  const x = g.input('x', DataType.FLOAT, [1]);
  g.op('Add', [x, x], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [1]);
  const session = await ort.InferenceSession.create(g.build().bytes, { executionProviders: ['cuda'] });
  try {
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1), [1]) });
    if ((out.y.data as Float32Array)[0] !== 2) throw new Error('the CUDA probe computed 1 + 1 wrong');
  } finally {
    await session.release();
  }
}
