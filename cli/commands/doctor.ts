import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { compileConstraints } from '../../model/constraints.ts';
import { isBundle } from '../../sidecar/bundle/manifest.ts';
import { describeEstimate, estimateMemory, gib, memoryShortfalls } from '../../sidecar/bundle/memory-estimate.ts';
import { availableMemory, modelPrecision, servingShapeFromEnv } from '../../sidecar/bundle/model-memory.ts';
import { DEFAULT_SAMPLING } from '../../contract/generation-request.ts';
import { loadEngine } from '../../sidecar/engine/generation-engine.ts';
import { openModel } from '../../sidecar/engine/model-source.ts';
import { STEP_INPUTS } from '../../sidecar/graphs/step-decoder.ts';
import { findCudaLibraries } from '../../sidecar/onnx/cuda-libraries.ts';
import { predictHostCopies } from '../../sidecar/onnx/cuda-placement.ts';
import { nvidiaGpus } from '../../sidecar/onnx/gpu-info.ts';
import { providerStatuses } from '../../sidecar/onnx/provider-status.ts';
import { gpuRequired } from '../../sidecar/onnx/session.ts';

/**
 * Exit codes of `anole doctor`, for scripts: 0 this machine can run it (without --model: ONNX Runtime
 * works, and CUDA does where ANOLE_REQUIRE_GPU=1 asks for it); 1 doctor itself failed (a bad --model,
 * the --run failed); 2 CUDA is required (ANOLE_REQUIRE_GPU=1, or a --target cuda model) and cannot run;
 * 3 the model does not fit this machine's memory at the configured batch.
 */
export const DOCTOR_EXIT = { ok: 0, failed: 1, cudaUnavailable: 2, doesNotFit: 3 } as const;

/**
 * `anole doctor [--model M] [--run]`: what a deployer runs on a fresh box, one fact per line on stdout.
 * The ONNX Runtime version, every execution provider and whether it loads (why not: the missing
 * libraries), the GPU and its driver (nvidia-smi), the CUDA / cuDNN libraries the loader finds; for
 * a model its target and dtype, its memory estimate against this machine, whether it can run here;
 * `--run` a few decode steps with ONNX Runtime's profiling on.
 */
export async function doctorCommand(modelDir: string | undefined, opts: { run?: boolean; steps?: number }): Promise<void> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  ort.env.logLevel = 'fatal'; // the probes' failures are reported here, one line each, not as ONNX Runtime's log
  let code: number = DOCTOR_EXIT.ok;

  say(`onnxruntime-node: ${ort.env.versions.node} (${path.dirname(path.dirname(fs.realpathSync(new URL(import.meta.resolve('onnxruntime-node')))))})`);
  const statuses = await providerStatuses();
  for (const s of statuses) say(`execution provider ${s.name}: ${s.loads ? 'loads' : `does not load: ${s.reason}`}`);
  const cuda = statuses.find((s) => s.name === 'cuda');
  const cudaLoads = cuda?.loads ?? false;
  say(cudaLoads ? 'CUDA: available' : `CUDA: unavailable: ${cuda?.reason ?? 'this onnxruntime-node build has no CUDA provider'}`);
  const gpus = nvidiaGpus();
  if (!gpus) say('GPU: none (nvidia-smi not found: no NVIDIA driver here)');
  else gpus.forEach((g, i) => say(`GPU ${i}: ${g.name}, driver ${g.driver}, ${gib(g.memoryBytes)} (${gib(g.memoryUsedBytes)} in use)`));
  const libs = findCudaLibraries();
  say(`CUDA libraries: ${libs.length ? libs.join(', ') : 'none found (ldconfig cache, LD_LIBRARY_PATH)'}`);
  const available = availableMemory();
  say(`host memory: ${gib(available.hostBytes)}`);
  if (gpuRequired() && !cudaLoads) {
    say('ANOLE_REQUIRE_GPU=1: a worker would refuse to start here');
    code = DOCTOR_EXIT.cudaUnavailable;
  }

  if (modelDir) {
    const { config, precision, blockSize } = modelPrecision(modelDir);
    say(`model: ${modelDir} (${isBundle(modelDir) ? 'bundle' : 'Hugging Face directory'}), dtype ${precision.dtype}, target ${precision.target}${precision.activations ? `, activations ${precision.activations}` : ''}`);
    const shape = servingShapeFromEnv();
    const estimate = estimateMemory(config, precision, shape, blockSize);
    say(`memory at batch ${shape.batch} (ANOLE_BATCH_SIZE): ${describeEstimate(estimate)}`);
    say(`memory here: host ${gib(available.hostBytes)}, GPU ${available.gpuBytes === undefined ? 'unknown (no nvidia-smi)' : gib(available.gpuBytes)}`);
    if (precision.target === 'cuda') say(cudaGraphReadiness(modelDir));
    const short = memoryShortfalls(estimate, available);
    if (precision.target === 'cuda' && !cudaLoads) {
      say(`can run here: no: it targets CUDA, which is unavailable (${cuda?.reason})`);
      code = DOCTOR_EXIT.cudaUnavailable;
    } else if (short.length) {
      say(`can run here: no: it ${short.join(' and ')}`);
      code = DOCTOR_EXIT.doesNotFit;
    } else {
      say(`can run here: yes, on ${precision.target === 'cuda' ? 'CUDA' : 'the CPU'}`);
    }
    if (opts.run) {
      if (code !== DOCTOR_EXIT.ok) say('run: skipped (it cannot run here)');
      else for (const line of await profiledRun(modelDir, opts.steps ?? 32)) say(line);
    }
  } else if (opts.run) {
    say('run: skipped (--run needs --model)');
  }
  process.exitCode = code;
}

/**
 * A few decode steps (greedy-free text sampling, one row) through the generator with ONNX Runtime's
 * profiling on; the profile (written when the session is released) says which provider ran each node
 * and which Memcpy nodes ONNX Runtime inserted between providers.
 */
async function profiledRun(modelDir: string, steps: number): Promise<string[]> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-doctor-'));
  try {
    const generator = await loadEngine(openModel(modelDir), { profileFilePrefix: path.join(tmp, 'profile'), imageHead: false });
    const config = generator.config;
    const request = {
      promptIds: [config.bosTokenId, ...Array.from({ length: 15 }, (_, i) => 100 + i)],
      constraints: compileConstraints(config, 'text', [config.eosTokenId]),
      maxNewTokens: steps,
      text: { ...DEFAULT_SAMPLING.text },
      image: { ...DEFAULT_SAMPLING.image },
      repetitionPenalty: DEFAULT_SAMPLING.repetitionPenalty,
      guidance: { text: 1, image: 1 },
      seed: 1,
    };
    let tokens = 0;
    const started = performance.now();
    try {
      for await (const e of generator.generate([request])) if (e.type === 'done') tokens = e.tokens.length;
    } finally {
      await generator.release(); // writes the profile
    }
    const seconds = (performance.now() - started) / 1000;
    // one profile per session (engine v2 runs several: the step, the head, the copies)
    const files = fs.readdirSync(tmp).filter((f) => f.endsWith('.json'));
    if (files.length === 0) throw new Error(`ONNX Runtime wrote no profile into ${tmp}`);
    const { nodesByProvider, memcpy } = summarizeProfile(files.flatMap((f) => JSON.parse(fs.readFileSync(path.join(tmp, f), 'utf8'))));
    const gpu = nvidiaGpus()?.[0];
    return [
      `run: engine ${generator.name}, ${tokens} tokens in ${seconds.toFixed(2)} s (${(tokens / seconds).toFixed(1)} tokens/s, prefill included), peak host memory ${gib(process.resourceUsage().maxRSS * 1024)}${gpu ? `, GPU memory in use after it ${gib(gpu.memoryUsedBytes)}` : ''}`,
      ...Object.entries(nodesByProvider).map(([provider, n]) => `run: ${n} nodes ran on ${provider}`),
      `run: ${memcpy.length} Memcpy nodes inserted${memcpy.length ? ` (${memcpy.slice(0, 5).join(', ')}${memcpy.length > 5 ? ', …' : ''})` : ''}`,
    ];
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

interface ProfileEvent {
  cat?: string;
  name?: string;
  args?: { op_name?: string; provider?: string };
}

/**
 * Whether ONNX Runtime could capture engine v2's decode runs as CUDA graphs (ANOLE_CUDA_GRAPH=1): it
 * refuses a session whose runs copy between host and device; the copies are predicted from the graphs.
 */
function cudaGraphReadiness(modelDir: string): string {
  const source = openModel(modelDir);
  const copies = (['step', 'head-full', 'head-image'] as const).flatMap((name) => {
    const graph = source.graph(name);
    return graph ? predictHostCopies(graph, [STEP_INPUTS.totalSequenceLength]).map((c) => `${name}: ${c.value} ${c.direction} at ${c.to}`) : [];
  });
  return copies.length
    ? `CUDA graphs: capture would be refused, ${copies.length} host copies (${copies.slice(0, 3).join('; ')}${copies.length > 3 ? '; …' : ''})`
    : 'CUDA graphs: the decode runs copy nothing between host and device (capturable; ANOLE_CUDA_GRAPH=1 turns it on)';
}

/** Distinct nodes per execution provider, and the Memcpy nodes, from ONNX Runtime's profiling JSON. */
export function summarizeProfile(events: ProfileEvent[]): { nodesByProvider: Record<string, number>; memcpy: string[] } {
  const nodes = new Map<string, Set<string>>();
  const memcpy = new Set<string>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.args?.provider || !e.name) continue;
    const node = e.name.replace(/_(kernel_time|fence_before|fence_after)$/, '');
    if (!nodes.has(e.args.provider)) nodes.set(e.args.provider, new Set());
    nodes.get(e.args.provider)!.add(node);
    if (e.args.op_name?.startsWith('Memcpy')) memcpy.add(node);
  }
  return { nodesByProvider: Object.fromEntries([...nodes].map(([p, s]) => [p, s.size])), memcpy: [...memcpy] };
}
