import type { GraphBuilder } from '../onnx/graph-builder.ts';
import type { QuantizedMatrix } from '../weights/quantized-tensors.ts';
import { weightDerived } from './decoder-layers.ts';

/**
 * y = x·Wᵀ (+ b) with W block-quantized (quantize-nbits.ts): com.microsoft.MatMulNBits dequantizes
 * inside the kernel, so the weight stream per token is bits/16 of fp16's. `rows` [start, end)
 * keeps only those output rows (the image head): packed weights and scales are sliced along N
 * once, in the root graph. x: [..., K] → [..., N or end - start], in the activation type.
 */
export function quantizedLinear(g: GraphBuilder, x: string, m: QuantizedMatrix, opts: { bias?: string; rows?: [number, number]; output?: string } = {}): string {
  const { bias, rows } = opts;
  let packed = g.weight(m.packed); // uint8 [N, kBlocks, blob]
  let scales = g.weight(m.scales); // [N, kBlocks], cast to the activation type
  let n = m.rows;
  if (rows) {
    const [start, end] = rows;
    const slice = (v: string) => weightDerived(g, `rows:${start}:${end}:${v}`, (root) => root.op('Slice', [v, root.int64s([start]), root.int64s([end]), root.int64s([0])]));
    packed = slice(packed);
    scales = slice(scales);
    n = end - start;
  }
  const attrs = { K: m.cols, N: n, bits: m.bits, block_size: m.blockSize, accuracy_level: m.accuracyLevel };
  if (!bias) return g.op('MatMulNBits', [x, packed, scales], attrs, { domain: 'com.microsoft', output: opts.output });
  return g.op('Add', [g.op('MatMulNBits', [x, packed, scales], attrs, { domain: 'com.microsoft' }), bias], {}, { output: opts.output });
}
