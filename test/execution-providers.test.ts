import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { chooseExecutionProviders, createSession, defaultExecutionProviders, nativeBindingDir } from '../sidecar/onnx/session.ts';

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

  it('chooses CUDA, with the CPU behind it for unsupported operators, when a CUDA session starts; nothing is logged', async () => {
    const lines: string[] = [];
    let probed = 0;
    const providers = await chooseExecutionProviders({
      log: (l) => lines.push(l),
      bindingDir: fakeCudaInstall(),
      probe: async () => {
        probed++;
      },
    });
    expect(providers).toEqual(['cuda', 'cpu']);
    expect(probed).toBe(1);
    expect(lines).toEqual([]);
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
