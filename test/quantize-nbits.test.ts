import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { blocksPerRow, dequantizeNBits, quantizeNBits, type NBits } from '../sidecar/weights/quantize-nbits.ts';

/** Deterministic values with a spread of magnitudes (and exact zeros and ties to exercise rounding). */
function matrix(rows: number, cols: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: rows * cols }, (_, i) => (i % 17 === 0 ? 0 : (next() - 0.5) * 2 ** (4 * next() - 2)));
}

/** ONNX Runtime's MatMulNBits on identity activations [K, K]: returns the dequantized Wᵀ it used, [K, N]. */
async function kernelWeights(q: ReturnType<typeof quantizeNBits>): Promise<Float32Array> {
  const { rows: N, cols: K, bits, blockSize } = q;
  const kBlocks = blocksPerRow(K, blockSize);
  const g = new GraphBuilder('nbits');
  const a = g.input('a', DataType.FLOAT, [K, K]);
  const packed = g.constant('packed', DataType.UINT8, [N, kBlocks, q.packed.length / (N * kBlocks)], q.packed);
  const scales = g.floats('scales', [N, kBlocks], q.scales);
  g.op('MatMulNBits', [a, packed, scales], { K, N, bits, block_size: blockSize, accuracy_level: 0 }, { domain: 'com.microsoft', output: 'y' });
  g.output('y', DataType.FLOAT, [K, N]);
  const session = await createSession(g.build(), { intraOpNumThreads: 1 });
  const eye = new Float32Array(K * K);
  for (let k = 0; k < K; k++) eye[k * K + k] = 1;
  const y = (await session.run({ a: new ort.Tensor('float32', eye, [K, K]) })).y.data as Float32Array;
  await session.release();
  return y;
}

describe('MatMulNBits packing (int4 / int8, block 32)', () => {
  for (const bits of [4, 8] as NBits[]) {
    for (const [N, K] of [[40, 64], [24, 70]]) {
      it(`ONNX Runtime dequantizes our ${bits}-bit packing of a ${N}×${K} matrix exactly as the TS reference`, async () => {
        const w = matrix(N, K, 7 * bits + K);
        const q = quantizeNBits(w, N, K, bits, 32);
        const reference = dequantizeNBits(q);
        const y = await kernelWeights(q);
        let maxDiff = 0;
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) maxDiff = Math.max(maxDiff, Math.abs(y[k * N + n] - reference[n * K + k]));
        expect(maxDiff).toBe(0);

        // and the reference is a quantization of w: each value within one step of its block's grid
        const kBlocks = blocksPerRow(K, 32);
        let worst = 0;
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) {
            const step = Math.abs(q.scales[n * kBlocks + Math.floor(k / 32)]);
            worst = Math.max(worst, Math.abs(reference[n * K + k] - w[n * K + k]) / (step || 1));
          }
        }
        expect(worst).toBeLessThanOrEqual(1.0001);
        // the largest magnitude of each block is stored exactly
        for (let n = 0; n < N; n++) {
          const row = Array.from(w.subarray(n * K, n * K + 32));
          const extreme = row.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0);
          expect(reference[n * K + row.indexOf(extreme)]).toBe(extreme);
        }
      });
    }
  }

  it('packs int4 low nibble first and leaves a short block padded with the zero point', () => {
    const w = Float32Array.from([-8, 1, 2, 3, ...new Array(16).fill(0)]); // one row, K = 20, one block of 32
    const q = quantizeNBits(w, 1, 20, 4, 32);
    expect(q.scales[0]).toBe(1); // -8 / -8
    expect(q.packed[0]).toBe(0 | (9 << 4)); // codes 0 (−8) and 9 (+1)
    expect(q.packed[1]).toBe(10 | (11 << 4));
    expect(Array.from(q.packed.subarray(10))).toEqual(new Array(6).fill(8 | (8 << 4))); // padding: zero point 8
  });
});
