/**
 * Child of measure-cold-start.ts, started fresh for every figure:
 *   load <dir>  loads the model as the sidecar's engine does (openModel, loadEngine: the step, head
 *               and copy sessions; ImageCodec: graphs, sessions on first use) and prints
 *               {"ready_ms": …, "stages_ms": {…}}: milliseconds since this process started, and
 *               where they went (COLD_START_STAGES, which add up to ready_ms);
 *   thread <dir> the sidecar's own path: EngineThread.start (a worker thread that registers tsx,
 *               imports the engine again and loads as above), and prints {"ready_ms": …};
 *   read <dir>  reads every weight file of <dir> once, start to end, and prints {"read_ms": …, "bytes": …}.
 * Run through tsx, or bundled by scripts/build-dist.ts beside the engine thread's bundle (no tsx in
 * either thread).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ModelSource } from '../sidecar/engine/model-source.ts';
import { stagesOf } from './cold-start-stages.ts';

// performance.now() counts from this process's start: everything before this line is node and tsx
// (from a bundle: node, parsing the bundle and the native packages it imports).
const started = performance.now();
const [mode, dir] = process.argv.slice(2);

if (mode === 'read') {
  const start = performance.now();
  // 1 MiB stays in the CPU's caches; a larger buffer slowed the read and flattered every ratio to
  // it (docs/benchmarks.md, "Cold start: how it is measured").
  const chunk = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') && !f.startsWith('goldens'))) {
    const fd = fs.openSync(path.join(dir, name), 'r');
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; ) bytes += n;
    fs.closeSync(fd);
  }
  process.stdout.write(JSON.stringify({ read_ms: performance.now() - start, bytes }) + '\n');
} else if (mode === 'load') {
  const { openModel } = await import('../sidecar/engine/model-source.ts');
  const { loadEngine } = await import('../sidecar/engine/generation-engine.ts');
  const { ImageCodec } = await import('../sidecar/engine/image-codec.ts');
  const imported = performance.now();
  const model = openModel(dir);
  const opened = performance.now();
  // The engine's own code path, with the time spent making each graph (built from a checkpoint,
  // or read from a bundle) told apart from the ONNX Runtime session made from it.
  let graphMs = 0;
  const timed: ModelSource = {
    ...model,
    graph(name) {
      const t = performance.now();
      const graph = model.graph(name);
      graphMs += performance.now() - t;
      return graph;
    },
  };
  // One after the other rather than Promise.all as the engine thread does: both are synchronous on
  // this thread (onnxruntime-node creates a session on the calling thread), so the sum is the same.
  const generator = await loadEngine(timed);
  const generatorDone = performance.now();
  const generatorGraphMs = graphMs;
  const codec = await ImageCodec.load(timed);
  const ready = performance.now();
  const stages = stagesOf({ started, imported, opened, generatorGraphMs, generatorDone, ready });
  process.stdout.write(JSON.stringify({ ready_ms: ready, stages_ms: stages }) + '\n');
  await Promise.all([generator.release(), codec.release()]);
} else if (mode === 'thread') {
  const { EngineThread } = await import('../sidecar/engine/engine-thread.ts');
  const engine = await EngineThread.start(dir);
  process.stdout.write(JSON.stringify({ ready_ms: performance.now() }) + '\n');
  await engine.generator.release();
} else {
  throw new Error('usage: cold-start-child.ts load|thread|read <dir>');
}
