import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, GPU_BASE_BYTES, HOST_BASE_BYTES, memoryShortfalls, residentWeightBytes } from '../sidecar/bundle/memory-estimate.ts';
import { assertModelFits, modelPrecision, servingShapeFromEnv } from '../sidecar/bundle/model-memory.ts';
import { slotCapacity } from '../sidecar/engine/slot-capacity.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';

const run = promisify(execFile);
const anole = (...args: string[]) => run(process.execPath, ['bin/anole.js', ...args], { env: { ...process.env, ANOLE_MODEL: '' } });
let tmp: string;
let small: string;
let vqBytes: number;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-estimate-'));
  small = path.join(tmp, 'small');
  await anole('init-model', '--preset', 'small', '--out', small);
  // the VQ-VAE as the checkpoint stores it (float32), summed from the file's own header
  vqBytes = [...openCheckpoint(small).tensors.values()].filter((t) => t.name.startsWith('model.vqmodel.')).reduce((a, t) => a + t.byteLength, 0);
}, 300_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// The small preset (sidecar/weights/random-checkpoint.ts): vocabulary 65536, hidden 512, MLP 1408, 8 layers,
// 8 heads of 64 (8 KV heads), 4096 positions, the real VQ-VAE (8192 codes).
const EMBEDDING = 65536 * 512 * 2; // bf16, gathered as stored
const MATRICES = 8 * (4 * 512 * 512 + 3 * 512 * 1408) + 65536 * 512 + 8192 * 512; // layers, lm-head, its image rows again
const NORMS = (8 * (512 + 2 * 8 * 64 + 2 * 8 * 64 + 512) + 512) * 4; // layer norms, q/k norms (weight and bias), final norm

describe('memory estimate, against a hand computation for the small preset', () => {
  it('the hand computation agrees with the checkpoint the small preset writes (bf16 text decoder)', () => {
    expect(MATRICES).toBe(63_438_848);
    const text = [...openCheckpoint(small).tensors.values()].filter((t) => !t.name.startsWith('model.vqmodel.')).reduce((a, t) => a + t.byteLength, 0);
    expect(text).toBe(EMBEDDING + (MATRICES - 8192 * 512) * 2 + NORMS / 2);
    expect(vqBytes).toBeGreaterThan(270e6); // 68.7 M float32 parameters
  });

  it('fp32 on the CPU (a Hugging Face directory): float32 matrices, KV and activations in float32, all on the host', () => {
    const { config, precision } = modelPrecision(small);
    expect(precision).toEqual({ dtype: 'fp32', target: 'cpu' });
    const e = estimateMemory(config, precision, { batch: 1 });
    const weights = EMBEDDING + MATRICES * 4 + NORMS + vqBytes;
    const kv = 2 * 8 * 3 * 4096 * 8 * 64 * 4; // K and V, layers, 3 rows (a guided image), 4096 tokens, 8×64, float32
    const activations = 3 * 8 * 1024 * 1024 * 4 + 3 * 1024 * 3 * 1408 * 4 + 3 * 1024 * 4 * 512 * 4 + 3 * 65536 * 4 * 2;
    expect(kv).toBe(402_653_184);
    expect(activations).toBe(179_306_496);
    expect(e).toEqual({
      precision,
      rows: 3,
      context: 4096,
      promptTokens: 1024,
      weightsBytes: weights,
      kvCacheBytes: kv,
      activationsBytes: activations,
      gpuBytes: 0,
      hostBytes: HOST_BASE_BYTES + weights + kv + activations,
    });
  });

  it('int4 on CUDA: 4-bit matrices with an fp16 scale per 32, one fp16 KV cache on the GPU, none on the host (engine v2)', () => {
    const { config } = modelPrecision(small);
    const e = estimateMemory(config, { dtype: 'int4', target: 'cuda' }, { batch: 2 });
    const weights = EMBEDDING + MATRICES * (0.5 + 2 / 32) + NORMS + vqBytes;
    const kv = 2 * 8 * 6 * 4096 * 8 * 64 * 2;
    const activations = 6 * 8 * 1024 * 1024 * 2 + 6 * 1024 * 3 * 1408 * 2 + 6 * 1024 * 4 * 512 * 2 + 6 * 65536 * 4 * 2;
    expect(e.weightsBytes).toBe(weights);
    expect(e.kvCacheBytes).toBe(kv);
    expect(e.activationsBytes).toBe(activations);
    expect(e.gpuBytes).toBe(weights + kv + activations + GPU_BASE_BYTES);
    expect(e.hostBytes).toBe(HOST_BASE_BYTES);
  });

  it('fp16 on the CPU is upcast at load: the same resident bytes as fp32; on CUDA half', () => {
    const { config } = modelPrecision(small);
    expect(residentWeightBytes(config, { dtype: 'fp16', target: 'cpu' })).toBe(residentWeightBytes(config, { dtype: 'fp32', target: 'cpu' }));
    expect(residentWeightBytes(config, { dtype: 'fp16', target: 'cuda' })).toBe(EMBEDDING + MATRICES * 2 + NORMS + vqBytes);
  });

  it('the weights term matches what an fp32 bundle of the small preset stores, within 1%', async () => {
    const bundle = path.join(tmp, 'small-fp32');
    await anole('convert', '--from', small, '--out', bundle, '--dtype', 'fp32');
    const stored = fs.statSync(path.join(bundle, 'model.safetensors')).size;
    const { config, precision } = modelPrecision(bundle);
    expect(precision).toEqual({ dtype: 'fp32', target: 'cpu' });
    expect(Math.abs(residentWeightBytes(config, precision) / stored - 1)).toBeLessThan(0.01);
  });

  it('fits within 90% of what is there, else says what it needs against what there is', () => {
    const { config } = modelPrecision(small);
    const e = estimateMemory(config, { dtype: 'int4', target: 'cuda' }, { batch: 1 });
    expect(memoryShortfalls(e, { gpuBytes: e.gpuBytes / 0.9, hostBytes: e.hostBytes / 0.9 })).toEqual([]);
    expect(memoryShortfalls(e, { gpuBytes: e.gpuBytes, hostBytes: e.hostBytes })).toEqual([
      expect.stringMatching(/^needs \d+\.\d\d GiB of GPU memory, more than 90% of the GPU's \d+\.\d\d GiB$/),
      expect.stringMatching(/^needs \d+\.\d\d GiB of host memory, more than 90% of the host's \d+\.\d\d GiB$/),
    ]);
    // an unknown GPU (no nvidia-smi) is not held against it
    expect(memoryShortfalls(e, { hostBytes: 1e15 })).toEqual([]);
    expect(() => assertModelFits(small, { batch: 4 }, { hostBytes: 2 ** 30 })).toThrow(
      new RegExp(`^${small} \\(fp32 for cpu\\) does not fit this machine at batch 4: it needs .* of host memory, more than 90% of the host's 1\\.00 GiB; estimate: host .*; it does not fit even at batch 1: use a smaller bundle or a bigger machine$`),
    );
    const one = estimateMemory(modelPrecision(small).config, { dtype: 'fp32', target: 'cpu' }, { batch: 1 }).hostBytes;
    const two = estimateMemory(modelPrecision(small).config, { dtype: 'fp32', target: 'cpu' }, { batch: 2 }).hostBytes;
    expect(() => assertModelFits(small, { batch: 4 }, { hostBytes: (one + two) / 2 / 0.9 })).toThrow(/; set ANOLE_BATCH_SIZE to 1 or less, or use a smaller bundle$/);
    expect(assertModelFits(small, { batch: 2 }, { hostBytes: two / 0.9 }).hostBytes).toBe(two);
  });

  it("the worker's KV cache is the one the check counted: ANOLE_BATCH_SIZE jobs of 3 rows at ANOLE_MAX_CONTEXT, as engine v2's slots", () => {
    const shape = servingShapeFromEnv({ ANOLE_BATCH_SIZE: '2', ANOLE_MAX_CONTEXT: '1100' });
    expect(shape).toEqual({ batch: 2, context: 1100 });
    expect(servingShapeFromEnv({})).toEqual({ batch: 4 });
    const { config } = modelPrecision(small);
    const e = estimateMemory(config, { dtype: 'fp32', target: 'cpu' }, shape);
    // sidecar/worker/main.ts hands e.kvCacheBytes to the engine when ANOLE_KV_CACHE_MIB is unset
    expect(slotCapacity(config, 'float32', { cacheBytes: e.kvCacheBytes, cacheContext: 1100 })).toEqual({ slots: 6, context: 1100 });
  });
});
