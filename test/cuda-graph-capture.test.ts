import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decoderWeights } from '../sidecar/graphs/decoder.ts';
import { buildModelGraph, type GraphName } from '../sidecar/graphs/model-graphs.ts';
import { STEP_INPUTS } from '../sidecar/graphs/step-decoder.ts';
import { predictHostCopies } from '../sidecar/onnx/cuda-placement.ts';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { openCheckpoint, type Checkpoint } from '../sidecar/weights/checkpoint.ts';
import { RANDOM_CHECKPOINT_PRESETS, writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/**
 * CUDA graph capture, checked without a GPU: ONNX Runtime captures a session only when no value has
 * to be copied between host and device memory at a run (no Memcpy nodes). predictHostCopies places
 * the nodes as ORT's CUDA provider would and lists those copies; engine v2's decode graphs must have none.
 */
let dir: string;
let gqa: Checkpoint; // head_dim 16: the rotary runs inside GroupQueryAttention, as in the 7B
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-capture-'));
  const shape = { ...RANDOM_CHECKPOINT_PRESETS.tiny, hiddenSize: 64, numAttentionHeads: 4, numKeyValueHeads: 2 };
  writeRandomCheckpoint({ out: dir, preset: shape, seed: 3 });
  gqa = openCheckpoint(dir);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('host copies ONNX Runtime would make on CUDA (no GPU needed)', () => {
  const build = (f: (g: GraphBuilder) => void) => {
    const g = new GraphBuilder('t');
    f(g);
    return g.build();
  };

  it('none for a shape computed on the host and read as a shape (the helper nodes stay on the CPU)', () => {
    const model = build((g) => {
      g.input('x', DataType.FLOAT16, ['n', 4]);
      const shape = g.op('Concat', [g.op('Shape', ['x'], { start: 0, end: 1 }), g.int64s([2, 2])], { axis: 0 });
      g.op('Reshape', ['x', shape], {}, { output: 'y' });
      g.output('y', DataType.FLOAT16, ['n', 2, 2]);
    });
    expect(predictHostCopies(model)).toEqual([]);
  });

  it('one where a length taken from a shape meets device values, naming both ends', () => {
    const model = build((g) => {
      g.input('x', DataType.INT64, ['g', 'v']);
      g.input('k', DataType.INT64, ['g']);
      const width = g.op('Squeeze', [g.op('Shape', ['x'], { start: 1, end: 2 }), g.int64s([0])], {}, { name: 'width', output: 'v' });
      g.op('Where', [g.op('Equal', ['k', g.int64(0)]), width, 'k'], {}, { output: 'y', name: 'pick' });
      g.output('y', DataType.INT64, ['g']);
    });
    expect(predictHostCopies(model)).toEqual([{ value: 'v', to: 'Where pick, input 1', from: 'Squeeze width', direction: 'to device' }]);
  });

  it('a graph input bound on the host is fine where the kernel reads it there, a copy elsewhere', () => {
    const model = build((g) => {
      g.input('x', DataType.FLOAT16, ['n', 4]);
      g.input('shape', DataType.INT64, [2]);
      g.op('Reshape', ['x', 'shape'], {}, { output: 'y', name: 'reshape' });
      g.op('Add', ['shape', g.int64(1)], {}, { output: 'z', name: 'plus' });
      g.output('y', DataType.FLOAT16, [4, 'n']);
      g.output('z', DataType.INT64, [2]);
    });
    expect(predictHostCopies(model, ['shape']).map((c) => c.to)).toEqual(['Add plus, input 0']);
    // bound on the device instead, the Reshape would need it on the host
    expect(predictHostCopies(model).map((c) => [c.to, c.direction])).toEqual([['Reshape reshape, input 1', 'to host']]);
  });

  for (const dtype of ['fp16', 'bf16'] as const) {
    for (const [label, ckpt] of [['the GQA checkpoint (head_dim 16)', () => gqa], ['the fixture (head_dim 8, rotary outside)', () => openCheckpoint('test/fixtures/anole-tiny')]] as const) {
      it(`none in engine v2's step and heads, --target cuda --dtype ${dtype}, ${label}`, () => {
        const c = ckpt();
        const w = decoderWeights(c);
        const names: GraphName[] = ['step', 'head-full', 'head-image'];
        for (const name of names) {
          const model = buildModelGraph(c, name, { target: 'cuda', dtype }, w)!;
          expect(model, name).toBeDefined();
          expect(predictHostCopies(model, [STEP_INPUTS.totalSequenceLength]), name).toEqual([]);
        }
      });
    }
  }
});
