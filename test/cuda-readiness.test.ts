import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildModelGraphs } from '../sidecar/graphs/model-graphs.ts';
import type { Precision } from '../sidecar/graphs/precision.ts';
import { missingCudaKernel, CUDA_KERNELS } from '../sidecar/onnx/cuda-kernels.ts';
import { DataType, DEFAULT_OPSETS, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { typedNodes, type TypedNode } from '../sidecar/onnx/node-types.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';

const FIXTURE = 'test/fixtures/anole-tiny';

/** Every distinct (graph, domain, op, input types) of a model's graphs, one line each. */
function listing(graphs: Record<string, { bytes: Uint8Array; externalDir: string | undefined }>): { line: string; node: TypedNode }[] {
  const seen = new Map<string, TypedNode>();
  for (const [file, model] of Object.entries(graphs)) {
    for (const node of typedNodes(model)) {
      const line = `${file}: ${node.domain || 'ai.onnx'}.${node.opType}(${node.inputTypes.map((t) => t || '-').join(', ')})`;
      if (!seen.has(line)) seen.set(line, node);
    }
  }
  return [...seen].map(([line, node]) => ({ line, node }));
}

describe('CUDA readiness (kernel table of ONNX Runtime CUDA EP, no GPU needed)', () => {
  it('the kernel table names its source and version', () => {
    expect(CUDA_KERNELS.source.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(CUDA_KERNELS.source.onnxruntimeVersion).toMatch(/^1\.30/);
  });

  for (const dtype of ['fp16', 'bf16'] as const) {
    it(`every node of the --target cuda --dtype ${dtype} graphs has a CUDA kernel`, () => {
      const precision: Precision = { dtype, target: 'cuda' };
      const nodes = listing(buildModelGraphs(openCheckpoint(FIXTURE), precision));
      fs.mkdirSync('.cache', { recursive: true });
      fs.writeFileSync(`.cache/cuda-nodes-${dtype}.txt`, nodes.map((n) => n.line).join('\n') + '\n');
      const missing = nodes.map((n) => missingCudaKernel(n.node, DEFAULT_OPSETS)).filter((m) => m !== undefined);
      expect(missing).toEqual([]);
      // the decoder really computes in the requested type: its matrix products read fp16 / bf16 activations
      const wanted = { fp16: 'float16', bf16: 'bfloat16' }[dtype];
      const matmuls = nodes.filter((n) => /^step: ai\.onnx\.(MatMul|Gemm)\(/.test(n.line));
      expect(matmuls.length).toBeGreaterThan(0);
      expect(matmuls.every((n) => n.node.inputTypes.every((t) => t === wanted))).toBe(true);
    });
  }

  it('--target cuda --dtype fp32 has no engine graphs: refused, saying what to use instead', () => {
    expect(() => buildModelGraphs(openCheckpoint(FIXTURE), { dtype: 'fp32', target: 'cuda' })).toThrow(
      /the step graph: --target cuda --dtype fp32 has no engine \(GroupQueryAttention has no float32 CUDA kernel\); use --dtype fp16 or bf16/,
    );
  });

  it('catches ops and types the CUDA EP lacks', () => {
    const g = new GraphBuilder('gaps');
    const x = g.input('x', DataType.BFLOAT16, [4]);
    const f = g.input('f', DataType.FLOAT, [4]);
    g.node('TopK', [x, g.int64s([2])], { axis: 0 }, { outputs: ['v', 'i'] }); // TopK has no bf16 CUDA kernel
    g.op('Cos', [x], {}, { output: 'c' }); // nor Cos
    g.node('GroupQueryAttention', [f, f, f], { num_heads: 1, kv_num_heads: 1 }, { domain: 'com.microsoft', outputs: ['y', 'pk', 'pv'] }); // fp16/bf16 only
    g.op('Sin', [f], {}, { output: 's' }); // fine
    const problems = typedNodes(g.build()).map((n) => missingCudaKernel(n, DEFAULT_OPSETS));
    expect(problems[0]).toMatch(/ai\.onnx\.TopK\(bfloat16, int64\): input 0 is bfloat16/);
    expect(problems[1]).toMatch(/ai\.onnx\.Cos\(bfloat16\)/);
    expect(problems[2]).toMatch(/com\.microsoft\.GroupQueryAttention\(float, float, float\): input 0 is float/);
    expect(problems[3]).toBeUndefined();
    expect(missingCudaKernel({ graph: 'g', name: 'n', domain: '', opType: 'Einsum', inputTypes: ['float'] }, DEFAULT_OPSETS)).toMatch(/no CUDA kernel is listed/);
  });
});
