import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { anole } from './cli-harness.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import { openModel } from '../sidecar/engine/model-source.ts';
import { STEP_INPUTS } from '../sidecar/graphs/step-decoder.ts';
import { missingCudaKernel } from '../sidecar/onnx/cuda-kernels.ts';
import { predictHostCopies } from '../sidecar/onnx/cuda-placement.ts';
import { DEFAULT_OPSETS } from '../sidecar/onnx/graph-builder.ts';
import { typedNodes } from '../sidecar/onnx/node-types.ts';

const FIXTURE = 'test/fixtures/anole-tiny';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cli-convert-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('anole convert', () => {
  it('writes an int8 bundle that forward loads in place of the HF directory', async () => {
    const bundle = path.join(tmp, 'int8');
    const r = await anole('convert', '--from', FIXTURE, '--out', bundle, '--dtype', 'int8');
    expect(r.stderr).not.toMatch(/anole:/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe(bundle);
    const manifest = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8'));
    expect(manifest.precision).toEqual({ dtype: 'int8', target: 'cpu' });
    expect(manifest.quantization).toEqual({ bits: 8, blockSize: 32, accuracyLevel: 4 }); // CPU default

    const input = path.join(tmp, 'in.json');
    fs.writeFileSync(input, JSON.stringify({ input_ids: [[0, 16400, 16500]] }));
    const f = await anole('forward', '--model', bundle, '--input', input, '--output', path.join(tmp, 'logits.bin'));
    expect(f.code).toBe(0);
    expect(fs.statSync(path.join(tmp, 'logits.bin')).size).toBe(3 * 65536 * 4);

  });

  it('refuses an unknown dtype and a non-empty output directory with one clear line', async () => {
    const bad = await anole('convert', '--from', FIXTURE, '--out', path.join(tmp, 'x'), '--dtype', 'int3');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/int3/);
    fs.mkdirSync(path.join(tmp, 'full'));
    fs.writeFileSync(path.join(tmp, 'full', 'keep.txt'), 'x');
    const busy = await anole('convert', '--from', FIXTURE, '--out', path.join(tmp, 'full'));
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/anole: .*full is not empty; refusing to overwrite it/);
  });

  it('--activations bf16: an int4 CUDA bundle that computes in bf16, every node with a CUDA kernel and no host copy', async () => {
    const bundle = path.join(tmp, 'int4-cuda-bf16');
    const r = await anole('convert', '--from', FIXTURE, '--out', bundle, '--dtype', 'int4', '--target', 'cuda', '--activations', 'bf16');
    expect(r.stderr).not.toMatch(/anole:/);
    expect(r.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8')).precision).toEqual({ dtype: 'int4', target: 'cuda', activations: 'bf16' });
    const source = openModel(bundle);
    for (const name of ['step', 'head-full', 'head-image'] as const) {
      const graph = source.graph(name)!;
      const nodes = typedNodes(graph);
      expect(nodes.map((n) => missingCudaKernel(n, DEFAULT_OPSETS)).filter((m) => m !== undefined), name).toEqual([]);
      expect(predictHostCopies(graph, [STEP_INPUTS.totalSequenceLength]), name).toEqual([]);
      const products = nodes.filter((n) => n.opType === 'MatMulNBits');
      expect(products.length, name).toBeGreaterThan(0);
      expect(products.every((n) => n.inputTypes[0] === 'bfloat16'), name).toBe(true); // the activations, not fp16
    }
  });

  it('refuses --activations where it means nothing (the CPU, float weights), naming the flag', async () => {
    for (const [dtype, target] of [['int4', 'cpu'], ['fp16', 'cuda']]) {
      const out = path.join(tmp, `act-${dtype}-${target}`);
      const r = await anole('convert', '--from', FIXTURE, '--out', out, '--dtype', dtype, '--target', target, '--activations', 'bf16');
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe('anole: anole convert: --activations applies to --target cuda with --dtype int8 or int4 (fp16 / bf16 weights compute in their own type, the CPU in float32)');
      expect(fs.existsSync(out)).toBe(false);
    }
  });

  it('refuses --target cuda --dtype fp32 (no engine runs it), saying what to use, and writes nothing', async () => {
    const out = path.join(tmp, 'cuda-fp32');
    const r = await anole('convert', '--from', FIXTURE, '--out', out, '--dtype', 'fp32', '--target', 'cuda');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('anole: anole convert: --target cuda --dtype fp32 has no engine (GroupQueryAttention has no float32 CUDA kernel); use --dtype fp16 or bf16');
    expect(fs.existsSync(out)).toBe(false);
    // the library call refuses it too, whoever calls it
    await expect(writeBundle({ from: FIXTURE, out, precision: { dtype: 'fp32', target: 'cuda' } })).rejects.toThrow('use --dtype fp16 or bf16');
    expect(fs.existsSync(out)).toBe(false);
  });
});
