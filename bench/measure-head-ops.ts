import * as ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { median } from './median.ts';

/**
 * What the text head's parts cost alone on this machine (docs/engine-v2.md, "Next"): the lm-head's
 * MatMul, the full sort the sampler does (TopK with k = V), softmax + cumulative sum, and partial sorts.
 * One row of random numbers, 2 intra-op threads, medians of 40 runs after 5 warm-ups:
 *   npx tsx bench/measure-head-ops.ts [--vocab 65536] [--hidden 512]
 */
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const V = arg('vocab', 65536);
const C = arg('hidden', 512);

async function time(name: string, build: (g: GraphBuilder) => void, feeds: Record<string, ort.Tensor>): Promise<void> {
  const g = new GraphBuilder(name);
  build(g);
  const session = await createSession(g.build(), { intraOpNumThreads: 2, executionProviders: ['cpu'] });
  for (let i = 0; i < 5; i++) await session.run(feeds);
  const ms: number[] = [];
  for (let i = 0; i < 40; i++) {
    const start = performance.now();
    await session.run(feeds);
    ms.push(performance.now() - start);
  }
  console.log(`${name}: ${median(ms).toFixed(2)} ms`);
  await session.release();
}

const random = (n: number, scale: number) => Float32Array.from({ length: n }, () => (Math.random() - 0.5) * scale);
const hidden = new ort.Tensor('float32', random(C, 2), [1, C]);
const logits = new ort.Tensor('float32', random(V, 8), [1, V]);
const topK = (k: number) => (g: GraphBuilder) => {
  g.input('l', DataType.FLOAT, [1, V]);
  const [values] = g.node('TopK', ['l', g.int64s([k])], { axis: 1, largest: 1, sorted: 1 }, { outputs: 2 });
  g.op('Identity', [values], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [1, k]);
};

await time(`lm-head MatMul [1, ${C}] × [${C}, ${V}]`, (g) => {
  g.input('h', DataType.FLOAT, [1, C]);
  g.op('MatMul', ['h', g.constant('w', DataType.FLOAT, [C, V], random(C * V, 1 / Math.sqrt(C)))], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [1, V]);
}, { h: hidden });
await time(`full sort (TopK k = ${V})`, topK(V), { l: logits });
await time('softmax + cumulative sum', (g) => {
  g.input('l', DataType.FLOAT, [1, V]);
  g.op('CumSum', [g.op('Softmax', ['l'], { axis: 1 }), g.int64(1)], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [1, V]);
}, { l: logits });
for (const k of [1024, 4096]) await time(`partial sort (TopK k = ${k})`, topK(k), { l: logits });
