import './telemetry-off.ts';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { missingLinkedLibraries } from './cuda-libraries.ts';
import { DataType, GraphBuilder, type BuiltModel } from './graph-builder.ts';

export interface SessionConfig {
  /** Threads inside one operator; default: ONNX Runtime's choice (all cores). */
  intraOpNumThreads?: number;
  /** Default: chooseExecutionProviders() (CUDA when it works here, else the CPU), decided once per process. */
  executionProviders?: string[];
  /** ONNX Runtime's profiling on, its JSON written to `<prefix>_<time>.json` when the session is released (`anole doctor --run`). */
  profileFilePrefix?: string;
}

/** ANOLE_REQUIRE_GPU=1 (the worker image sets it): no session may fall back to the CPU. */
export function gpuRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.ANOLE_REQUIRE_GPU === '1';
}

/** CUDA could not start where it is required; the message is one line that says why. */
export class GpuUnavailableError extends Error {
  override name = 'GpuUnavailableError';
}

/**
 * The providers and config entries a session gets. A CUDA session runs on CUDA alone with ONNX Runtime's
 * per-node CPU fallback disabled (`session.disable_cpu_ep_fallback`): a node without a CUDA kernel fails the
 * load instead of running slowly on the CPU with copies around it. ANOLE_CPU_EP_FALLBACK=1 allows the fallback
 * again (CUDA, then the CPU), for a graph whose shape computations ONNX Runtime prefers to keep on the CPU.
 */
export function providerSessionOptions(providers: string[], env: NodeJS.ProcessEnv = process.env): { executionProviders: string[]; config: Record<string, string> } {
  if (!providers.includes('cuda') || env.ANOLE_CPU_EP_FALLBACK === '1') return { executionProviders: providers, config: {} };
  // ONNX Runtime refuses an explicitly listed CPU provider together with the disabled fallback
  return { executionProviders: providers.filter((p) => p !== 'cpu'), config: { disable_cpu_ep_fallback: '1' } };
}

/**
 * Creates an ONNX Runtime session from a built graph. The graph travels as bytes and its external
 * weights are read from `externalDir`: ONNX Runtime refuses external paths that are absolute or
 * leave the model's directory, so the directory is given as a session option instead.
 */
export async function createSession(model: BuiltModel, config: SessionConfig = {}): Promise<ort.InferenceSession> {
  const providers = providerSessionOptions(config.executionProviders ?? (await defaultExecutionProviders()));
  const session: Record<string, string> = { ...providers.config };
  if (model.externalDir) session.model_external_initializers_file_folder_path = model.externalDir;
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    executionProviders: providers.executionProviders,
    ...(config.intraOpNumThreads ? { intraOpNumThreads: config.intraOpNumThreads } : {}),
    ...(config.profileFilePrefix ? { enableProfiling: true, profileFilePrefix: config.profileFilePrefix } : {}),
    ...(Object.keys(session).length ? { extra: { session } } : {}),
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
  /** Throw GpuUnavailableError instead of falling back to the CPU (default: gpuRequired(), ANOLE_REQUIRE_GPU=1). */
  requireGpu?: boolean;
}

/**
 * Why CUDA cannot run here, in one line, or undefined when it can. Three things must hold: this
 * onnxruntime-node build knows the CUDA provider, its libraries were installed (the GPU image installs
 * them; `npm ci` here skips them), and a session can actually start on CUDA (driver, GPU, CUDA and
 * cuDNN libraries: ONNX Runtime's message names the library it could not load).
 */
export async function cudaUnavailableReason(opts: Pick<ProviderOptions, 'bindingDir' | 'probe'> = {}): Promise<string | undefined> {
  if (!ort.listSupportedBackends().some((b) => b.name === 'cuda')) return 'this onnxruntime-node build has no CUDA provider';
  const library = path.join(opts.bindingDir ?? nativeBindingDir(), cudaProviderLibrary());
  if (!fs.existsSync(library)) return `no CUDA provider libraries: ${library} is missing`;
  try {
    await (opts.probe ?? probeCuda)();
  } catch (e) {
    // the libraries the provider links that the loader cannot find (a CUDA or cuDNN major this machine lacks)
    // say more than ONNX Runtime's "failed to load library", which names only the first
    const missing = missingLinkedLibraries(library);
    if (missing?.length) return `${path.basename(library)} links libraries not found here: ${missing.join(', ')}`;
    return `CUDA did not start: ${ortMessage(String((e as Error).message))}`;
  }
  return undefined;
}

/** The first line of an ONNX Runtime error without its source location and status prefix. */
export function ortMessage(message: string): string {
  const first = message.split('\n')[0];
  return / was false\. (.+)$/.exec(first)?.[1] ?? first.replace(/^.*\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : /, '');
}

/**
 * CUDA when it works on this machine, else the CPU, said in one log line; where the GPU is required
 * (ANOLE_REQUIRE_GPU=1), a GpuUnavailableError with that reason instead of the CPU.
 */
export async function chooseExecutionProviders(opts: ProviderOptions = {}): Promise<string[]> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const reason = await cudaUnavailableReason(opts);
  if (reason === undefined) return ['cuda'];
  if (opts.requireGpu ?? gpuRequired()) throw new GpuUnavailableError(`CUDA is required (ANOLE_REQUIRE_GPU=1) but cannot run: ${reason}`);
  log(`onnxruntime: running on the CPU (${reason})`);
  return ['cpu'];
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

/** y = x + x on one execution provider alone: creating it loads the provider (for CUDA: the driver, the device, its libraries). */
export async function probeProvider(name: string): Promise<void> {
  const g = new GraphBuilder(`${name}_probe`);
  const x = g.input('x', DataType.FLOAT, [1]);
  g.op('Add', [x, x], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [1]);
  const session = await ort.InferenceSession.create(g.build().bytes, { executionProviders: [name] });
  try {
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1), [1]) });
    if ((out.y.data as Float32Array)[0] !== 2) throw new Error(`the ${name} probe computed 1 + 1 wrong`);
  } finally {
    await session.release();
  }
}

const probeCuda = () => probeProvider('cuda');
