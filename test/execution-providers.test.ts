import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { chooseExecutionProviders, createSession, defaultExecutionProviders, GpuUnavailableError, nativeBindingDir, providerSessionOptions } from '../sidecar/onnx/session.ts';

// ONNX Runtime also logs each provider library it cannot load ("Failed to load library
// libonnxruntime_providers_shared.so") to stderr; the tests read the thrown errors, so its process-wide
// log stays at fatal here, set before the first session makes ORT's env (issue 19, item 6).
ort.env.logLevel = 'fatal';

const fakeInstalls: string[] = [];
afterAll(() => fakeInstalls.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A directory that looks like an onnxruntime-node install with the CUDA provider libraries. */
function fakeCudaInstall(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-cuda-'));
  fakeInstalls.push(dir);
  fs.writeFileSync(path.join(dir, process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'), '');
  return dir;
}

function doubler() {
  const g = new GraphBuilder('double');
  const x = g.input('x', DataType.FLOAT, [2]);
  g.op('Add', [x, x], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [2]);
  return g.build();
}

describe('chooseExecutionProviders', () => {
  it('falls back to the CPU with one line when the CUDA provider libraries are not installed (npm ci skips them here)', async () => {
    expect(fs.existsSync(path.join(nativeBindingDir(), 'onnxruntime_binding.node'))).toBe(true);
    const lines: string[] = [];
    const providers = await chooseExecutionProviders({ log: (l) => lines.push(l) });
    expect(providers).toEqual(['cpu']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^onnxruntime: running on the CPU \(no CUDA provider libraries: .*libonnxruntime_providers_cuda\.so is missing\)$/);
  });

  it('falls back to the CPU when the libraries are there but no CUDA session starts (a GPU image on a machine without a GPU)', async () => {
    const lines: string[] = [];
    // The real probe: ONNX Runtime tries to load its CUDA provider and fails on this machine.
    const providers = await chooseExecutionProviders({ log: (l) => lines.push(l), bindingDir: fakeCudaInstall() });
    expect(providers).toEqual(['cpu']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^onnxruntime: running on the CPU \(CUDA did not start: .+\)$/);
  });

  it('chooses CUDA alone when a CUDA session starts (no per-node CPU fallback: providerSessionOptions); nothing is logged', async () => {
    const lines: string[] = [];
    let probed = 0;
    const providers = await chooseExecutionProviders({
      log: (l) => lines.push(l),
      bindingDir: fakeCudaInstall(),
      probe: async () => {
        probed++;
      },
    });
    expect(providers).toEqual(['cuda']);
    expect(probed).toBe(1);
    expect(lines).toEqual([]);
  });

  it('where the GPU is required (ANOLE_REQUIRE_GPU=1) it throws the one-line reason instead of falling back', async () => {
    const lines: string[] = [];
    const missing = chooseExecutionProviders({ log: (l) => lines.push(l), requireGpu: true });
    await expect(missing).rejects.toThrow(GpuUnavailableError);
    await expect(missing).rejects.toThrow(/^CUDA is required \(ANOLE_REQUIRE_GPU=1\) but cannot run: no CUDA provider libraries: .*libonnxruntime_providers_cuda\.so is missing$/);
    // the libraries present but no GPU or CUDA here: ONNX Runtime's own first line says which library failed
    const noGpu = chooseExecutionProviders({ log: (l) => lines.push(l), bindingDir: fakeCudaInstall(), requireGpu: true });
    await expect(noGpu).rejects.toThrow(/^CUDA is required \(ANOLE_REQUIRE_GPU=1\) but cannot run: CUDA did not start: [^\n]+$/);
    expect(lines).toEqual([]);
  });

  it('a CUDA session runs on CUDA alone with session.disable_cpu_ep_fallback = 1; ANOLE_CPU_EP_FALLBACK=1 lets it fall back', async () => {
    expect(providerSessionOptions(['cuda'], {})).toEqual({ executionProviders: ['cuda'], config: { disable_cpu_ep_fallback: '1' } });
    expect(providerSessionOptions(['cuda', 'cpu'], {})).toEqual({ executionProviders: ['cuda'], config: { disable_cpu_ep_fallback: '1' } });
    expect(providerSessionOptions(['cuda', 'cpu'], { ANOLE_CPU_EP_FALLBACK: '1' })).toEqual({ executionProviders: ['cuda', 'cpu'], config: {} });
    expect(providerSessionOptions(['cpu'], {})).toEqual({ executionProviders: ['cpu'], config: {} });
    // ONNX Runtime reads the entry under that name from onnxruntime-node's `extra`: a node left to the CPU fails the load
    const refused = ort.InferenceSession.create(doubler().bytes, { executionProviders: ['cpu'], extra: { session: { disable_cpu_ep_fallback: '1' } } });
    await expect(refused).rejects.toThrow(/graph nodes that are assigned to the default CPU EP, but fallback to CPU EP has been explicitly disabled/);
  });

  it('createSession without providers uses the per-process choice (the CPU here) and computes; explicit providers are kept', async () => {
    expect(await defaultExecutionProviders()).toEqual(['cpu']);
    expect(defaultExecutionProviders()).toBe(defaultExecutionProviders());
    const input = { x: new ort.Tensor('float32', Float32Array.of(1.5, -2), [2]) };
    for (const session of [await createSession(doubler()), await createSession(doubler(), { executionProviders: ['cpu'] })]) {
      expect(Array.from((await session.run(input)).y.data as Float32Array)).toEqual([3, -4]);
      await session.release();
    }
    await expect(createSession(doubler(), { executionProviders: ['cuda'] })).rejects.toThrow(/Cuda|CUDA|shared library/);
  });
});
