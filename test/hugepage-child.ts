import fs from 'node:fs';
import ort from 'onnxruntime-node';
import { EngineThread } from '../sidecar/engine/engine-thread.ts';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';

/**
 * `node --import tsx test/hugepage-child.ts gemm`: creates an ONNX Runtime session whose one Gemm
 * has a 32 MiB constant weight (prepacked into ONNX Runtime's own memory at creation) and prints
 * {"anon_huge_kb": …}: how much of this process's anonymous memory sits on transparent huge pages.
 *
 * `node --import tsx test/hugepage-child.ts engine-thread MODEL_DIR`: starts an engine thread on the
 * model, as the worker does, and prints {"faults": …}: the process's page faults meanwhile.
 */
const [mode, modelDir] = process.argv.slice(2);
if (mode === 'gemm') {
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
} else if (mode === 'engine-thread') {
  const before = process.resourceUsage().minorPageFault;
  const engine = await EngineThread.start(modelDir, { intraOpNumThreads: 1 });
  const faults = process.resourceUsage().minorPageFault - before;
  await engine.generator.release();
  process.stdout.write(JSON.stringify({ faults }) + '\n');
} else {
  throw new Error('usage: hugepage-child.ts gemm | engine-thread MODEL_DIR');
}
