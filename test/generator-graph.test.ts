import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import { openModel } from '../sidecar/engine/model-source.ts';
import { typedNodes } from '../sidecar/onnx/node-types.ts';

/**
 * ONNX Runtime prepacks a matrix only for nodes at most one graph level below the initializer:
 * an int4 MatMulNBits inside a Loop inside an If dequantized its whole matrix on every call
 * (docs/benchmarks.md, "The generator's Loops sit in the root graph"). So the generator's Loops live in
 * the root graph, and this checks that every matrix product stays within one level.
 */
const FIXTURE = 'test/fixtures/anole-tiny';
const MATRIX_OPS = new Set(['MatMul', 'MatMulNBits', 'Gemm']);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-generator-graph-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the generator graph keeps every matrix product within one level of its weights', () => {
  for (const dtype of ['fp32', 'int4'] as const) {
    it(`${dtype}: no MatMul / MatMulNBits deeper than a Loop body or an If branch of the root graph`, async () => {
      let dir = FIXTURE;
      if (dtype !== 'fp32') {
        dir = path.join(tmp, dtype);
        await writeBundle({ from: FIXTURE, out: dir, precision: { dtype, target: 'cpu' } });
      }
      const nodes = typedNodes(openModel(dir).graph('generator')!).filter((n) => MATRIX_OPS.has(n.opType));
      const depth = (graph: string) => graph.split('/').length - 1;
      expect(nodes.length).toBeGreaterThan(0);
      if (dtype === 'int4') expect(nodes.some((n) => n.opType === 'MatMulNBits')).toBe(true);
      // the decoder step in both chunk Loops (depth 1) and the prefill branch (depth 1)
      expect(new Set(nodes.map((n) => depth(n.graph)))).toEqual(new Set([1]));
      expect(nodes.filter((n) => depth(n.graph) > 1)).toEqual([]);
    });
  }
});
