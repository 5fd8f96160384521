/**
 * Per-run cost of ONNX Runtime's C API through koffi (sidecar/ort-capi) against onnxruntime-node's JS
 * API, on y = x + 1 at a small and a large size: the JS API copies every input in and every output out
 * each run; the C API runs over JS memory bound once. Prints one line per figure (docs/ort-capi.md).
 * Run: npx tsx bench/ort-capi-overhead.ts
 */
import ort from 'onnxruntime-node';
import { IoBinding, MemoryInfo, Session, Value } from '../sidecar/ort-capi/index.ts';
import { addOneGraph } from '../test/ort-capi-graphs.ts';
import { median } from './median.ts';

const REPEATS = 5;

function microsPerCall(runs: number, f: () => void): number {
  const samples = Array.from({ length: REPEATS }, () => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < runs; i++) f();
    return Number(process.hrtime.bigint() - start) / 1e3 / runs;
  });
  return median(samples);
}

async function microsPerAsyncCall(runs: number, f: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < runs; i++) await f();
    samples.push(Number(process.hrtime.bigint() - start) / 1e3 / runs);
  }
  return median(samples);
}

const cuda = MemoryInfo.cuda(0);
console.log(`C call through koffi (MemoryInfoGetId): ${microsPerCall(20000, () => cuda.deviceId).toFixed(2)} µs`);
cuda.release();

for (const n of [256, 1 << 20]) {
  const model = addOneGraph(n);
  const runs = n > 1000 ? 50 : 5000;
  const x = new Float32Array(n).fill(1);
  const y = new Float32Array(n);
  const session = Session.fromBytes(model.bytes, { intraOpThreads: 1 });
  const xv = Value.fromArray(x, [n]);
  const yv = Value.fromArray(y, [n]);
  const binding = new IoBinding(session).bindInput('x', xv).bindOutput('y', yv);
  const capi = microsPerCall(runs, () => binding.run());
  binding.release();
  xv.release();
  yv.release();
  session.release();

  const jsSession = await ort.InferenceSession.create(model.bytes, { intraOpNumThreads: 1 });
  const feed = { x: new ort.Tensor('float32', x, [n]) };
  const js = await microsPerAsyncCall(runs, () => jsSession.run(feed));
  await jsSession.release();
  console.log(`y = x + 1, ${n} floats (${((n * 4) / 2 ** 20).toFixed(3)} MB): C API RunWithBinding ${capi.toFixed(1)} µs/run, JS API session.run ${js.toFixed(1)} µs/run`);
}
