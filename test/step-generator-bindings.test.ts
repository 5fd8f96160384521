import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sequenceRequest } from './generation-harness.ts';
import { cudaOptionsFromEnv } from '../sidecar/engine/cuda-options.ts';
import { checkpointSource } from '../sidecar/engine/model-source.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { STEP_INPUTS } from '../sidecar/graphs/step-decoder.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/**
 * What engine v2 binds its decode runs (the head and the step) to, checked where no GPU is needed:
 * on CUDA these would be the same values in the CUDA allocator's memory, so what must hold is that
 * none of them is JavaScript's memory and that they are bound once per batch size (the cache's slots
 * outlive calls), so every step of a size sees the same shapes and addresses (what CUDA graph
 * capture and replay require).
 */
let dir: string;
let engine: StepGenerator;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-bindings-'));
  writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 7 });
  engine = await StepGenerator.load(openCheckpoint(path.join(dir, 'ckpt')), { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await engine?.release();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('engine v2 decode bindings', () => {
  // guidance rows join and leave (guided interleaved, boi pushed), sequences end at different steps
  const batch = () => {
    const c = engine.config;
    const boi = { [c.boiTokenId]: 50 };
    return [
      sequenceRequest(c, [0, 16900, 16801, 8710], 'interleaved', 2 * (c.imageSeqLength + 2) + 4, { seed: 1, logitBias: boi }),
      sequenceRequest(c, [0, 16950, 8710], 'text', 7, { seed: 2 }),
      sequenceRequest(c, [0, 16420, 16421, 8710], 'image', c.imageSeqLength + 2, { seed: 3 }),
    ];
  };

  it('are made once per batch size, however rows join, idle and finish, and reused by the next call', async () => {
    const before = engine.stats.bindings;
    const imagesDone: number[] = [];
    for await (const e of engine.generate(batch())) if (e.type === 'image_done') imagesDone.push(e.sequence);
    expect(imagesDone.filter((s) => s === 0).length).toBeGreaterThanOrEqual(1); // the interleaved request opened (and closed) an image
    // the batch shrinks as sequences end (its highest slot and group in use): a few sizes, each bound once
    const firstCall = engine.stats.bindings - before;
    expect(firstCall).toBeGreaterThanOrEqual(1);
    expect(firstCall).toBeLessThanOrEqual(3);
    for await (const _ of engine.generate(batch())) void _;
    expect(engine.stats.bindings - before).toBe(firstCall);
  });

  it('read and write only memory ONNX Runtime allocated, except the constant total length GroupQueryAttention reads on the host', async () => {
    for await (const _ of engine.generate(batch())) void _;
    const bound = engine.decodeBindings;
    const runs = new Set(bound.map((b) => b.run));
    expect(runs).toEqual(new Set(['step', 'head']));
    const host = bound.filter((b) => b.owner === 'host');
    expect(host.map((b) => `${b.run}.${b.name}`)).toEqual([`step.${STEP_INPUTS.totalSequenceLength}`]);
    expect(host[0].dims).toEqual([]);
    // the step's cache: past and present of each layer are one buffer
    const cache = bound.filter((b) => b.run === 'step' && /^(past_key_values|present)\./.test(b.name));
    expect(cache.length).toBe(4 * engine.config.numHiddenLayers);
    for (const b of cache.filter((x) => x.direction === 'input')) {
      const present = cache.find((x) => x.direction === 'output' && x.name === b.name.replace('past_key_values.', 'present.'))!;
      expect(present.address).toBe(b.address);
    }
    // the head writes the ids the step reads, into the same buffer
    const ids = bound.find((b) => b.run === 'step' && b.name === STEP_INPUTS.inputIds)!;
    expect(bound.filter((b) => b.run === 'head' && b.name === 'row_ids').every((b) => b.address === ids.address)).toBe(true);
  });

  it('run each batch size as a CUDA graph of its own (the heads one per parity); prefills are not captured', async () => {
    for await (const _ of engine.generate(batch())) void _;
    const { sizes, prefill } = engine.decodeGraphs!;
    expect(prefill).toBe('-1');
    expect(sizes.length).toBeGreaterThanOrEqual(2); // the batch shrank as sequences ended
    const ids = sizes.flatMap((s) => [`step:${s.step}`, ...s.head.map((h) => `head:${h}`)]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => Number(id.split(':')[1]) >= 1)).toBe(true); // never ONNX Runtime's default graph 0
    expect(new Set(sizes.map((s) => `${s.R}x${s.G}`)).size).toBe(sizes.length);
  });

  it('with rounded sizes (on with CUDA graphs) bind powers of two, at most the slots, and give the same tokens', async () => {
    const rounded = await StepGenerator.load(openCheckpoint(path.join(dir, 'ckpt')), { intraOpNumThreads: 1, roundSizes: true, maxSlots: 6 });
    try {
      const done = async (e: StepGenerator) => {
        const out = [];
        for await (const ev of e.generate(batch())) if (ev.type === 'done') out.push(ev);
        return out.sort((a, b) => a.sequence - b.sequence);
      };
      expect(await done(rounded)).toEqual(await done(engine));
      const sizes = rounded.decodeGraphs!.sizes.map((s) => [s.R, s.G]).flat();
      expect(sizes.length).toBeGreaterThan(0);
      expect(sizes.every((n) => [1, 2, 4, 6].includes(n))).toBe(true); // 6 slots: 8 is capped to 6
      expect(sizes).toContain(6); // 5 or 6 rows in use round up to 8, capped at the 6 slots
    } finally {
      await rounded.release();
    }
  });

  it('keep their shapes from one call to the next with the same requests', async () => {
    const shapes = () => engine.decodeBindings.map((b) => `${b.run}.${b.direction}.${b.name}: [${b.dims.join(', ')}]`).sort();
    for await (const _ of engine.generate(batch())) void _;
    const first = shapes();
    for await (const _ of engine.generate(batch())) void _;
    expect(shapes()).toEqual(first);
  });
});

describe('engine v2 on CUDA, where no GPU is', () => {
  it('refuses at its first session, naming the CUDA provider call and why', async () => {
    const fp16 = checkpointSource(openCheckpoint(path.join(dir, 'ckpt')), { dtype: 'fp16', target: 'cuda' });
    await expect(StepGenerator.load(fp16, { executionProviders: ['cuda'] })).rejects.toThrow(
      /(UpdateCUDAProviderOptions|SessionOptionsAppendExecutionProvider_CUDA_V2): .*(Failed to load|libonnxruntime_providers)/,
    );
  });

  it('refuses a float32 model on CUDA before any session, saying what to convert it to', async () => {
    const ckpt = openCheckpoint(path.join(dir, 'ckpt'));
    const why = /float32 on CUDA has no engine \(GroupQueryAttention has no float32 CUDA kernel\); convert it with `anole convert --target cuda --dtype fp16` \(or bf16\), or run it on the CPU/;
    // a Hugging Face directory (float32 graphs) given the CUDA provider, and a cuda fp32 precision
    await expect(StepGenerator.load(ckpt, { executionProviders: ['cuda'] })).rejects.toThrow(why);
    await expect(StepGenerator.load(checkpointSource(ckpt, { dtype: 'fp32', target: 'cuda' }), { executionProviders: ['cuda'] })).rejects.toThrow(why);
  });

  it('takes its provider options from the environment, naming a bad variable', () => {
    expect(cudaOptionsFromEnv({})).toEqual({ device_id: 0, arena_extend_strategy: 'kSameAsRequested', enable_cuda_graph: false });
    expect(cudaOptionsFromEnv({ ANOLE_CUDA_GRAPH: '1' }).enable_cuda_graph).toBe(true);
    expect(() => cudaOptionsFromEnv({ ANOLE_CUDA_GRAPH: 'yes' })).toThrow('ANOLE_CUDA_GRAPH must be 0 or 1, got yes');
    expect(cudaOptionsFromEnv({ ANOLE_CUDA_DEVICE: '1', ANOLE_GPU_MEM_LIMIT_MIB: '20480', ANOLE_CUDA_ARENA_EXTEND: 'power-of-two' })).toEqual({
      device_id: 1,
      arena_extend_strategy: 'kNextPowerOfTwo',
      gpu_mem_limit: 20480 * 2 ** 20,
      enable_cuda_graph: false,
    });
    expect(() => cudaOptionsFromEnv({ ANOLE_GPU_MEM_LIMIT_MIB: '20G' })).toThrow('ANOLE_GPU_MEM_LIMIT_MIB must be a whole number, got 20G');
    expect(() => cudaOptionsFromEnv({ ANOLE_CUDA_ARENA_EXTEND: 'grow' })).toThrow(/ANOLE_CUDA_ARENA_EXTEND must be same-as-requested or power-of-two/);
  });
});
