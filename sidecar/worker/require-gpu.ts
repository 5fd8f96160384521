import { isBundle, readManifest } from '../bundle/manifest.ts';

/**
 * Why this worker must run on CUDA, or undefined when the CPU will do: ANOLE_REQUIRE_GPU=1 (the worker
 * image sets it), or a bundle built with `anole convert --target cuda` (fp16 graphs, which the CPU provider
 * has no fast kernels for).
 */
export function gpuRequirement(modelDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const why: string[] = [];
  if (env.ANOLE_REQUIRE_GPU === '1') why.push('ANOLE_REQUIRE_GPU=1');
  if (isBundle(modelDir) && readManifest(modelDir).precision.target === 'cuda') why.push(`${modelDir} is a --target cuda bundle`);
  return why.length ? why.join(', ') : undefined;
}

/**
 * Refuses to start a worker that must run on CUDA where CUDA cannot start: one line naming the reason
 * (the missing provider or CUDA library, the driver's error), so ECS shows a failing task instead of a
 * CPU worker taking jobs. ONNX Runtime is imported only when the GPU is required.
 */
export async function assertGpuIfRequired(modelDir: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const requirement = gpuRequirement(modelDir, env);
  if (!requirement) return;
  const { cudaUnavailableReason, GpuUnavailableError } = await import('../onnx/session.ts');
  probed ??= cudaUnavailableReason(); // once per process: the worker asks before its imports, loadModel again
  const reason = await probed;
  if (reason) throw new GpuUnavailableError(`CUDA is required (${requirement}) but cannot run: ${reason}`);
}

let probed: Promise<string | undefined> | undefined;
