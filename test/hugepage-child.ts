import fs from 'node:fs';
import ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';

/**
 * `node --import tsx test/hugepage-child.ts`: creates an ONNX Runtime session whose one Gemm has a
 * 32 MiB constant weight (prepacked into ONNX Runtime's own memory at creation) and prints
 * {"anon_huge_kb": …}: how much of this process's anonymous memory sits on transparent huge pages.
 */
const [N, K] = [4096, 2048];
const g = new GraphBuilder('hugepage_probe');
const x = g.input('x', DataType.FLOAT, [1, K]);
const w = g.floats('w', [N, K], new Float32Array(N * K).fill(0.5));
g.op('Gemm', [x, w], { transB: 1 }, { output: 'y' });
g.output('y', DataType.FLOAT, [1, N]);
const session = await ort.InferenceSession.create(g.build().bytes, { executionProviders: ['cpu'] });
const rollup = fs.readFileSync('/proc/self/smaps_rollup', 'utf8');
const anonHugeKb = Number(/^AnonHugePages:\s+(\d+) kB$/m.exec(rollup)?.[1] ?? NaN);
await session.release();
process.stdout.write(JSON.stringify({ anon_huge_kb: anonHugeKb }) + '\n');
