/**
 * Child of measure-cold-start.ts, started fresh for every figure:
 *   load <dir>  loads the model as the sidecar's engine does (openModel, Generator: its one
 *               session; ImageCodec: graphs, sessions on first use) and prints
 *               {"ready_ms": …} — milliseconds since this process started;
 *   read <dir>  reads every weight file of <dir> once, start to end, and prints {"read_ms": …}.
 */
import fs from 'node:fs';
import path from 'node:path';

const [mode, dir] = process.argv.slice(2);
if (mode === 'read') {
  const start = performance.now();
  const chunk = Buffer.allocUnsafe(64 << 20);
  let bytes = 0;
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') && !f.startsWith('goldens'))) {
    const fd = fs.openSync(path.join(dir, name), 'r');
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; ) bytes += n;
    fs.closeSync(fd);
  }
  process.stdout.write(JSON.stringify({ read_ms: performance.now() - start, bytes }) + '\n');
} else if (mode === 'load') {
  const { openModel } = await import('../sidecar/engine/model-source.ts');
  const { Generator } = await import('../sidecar/engine/generator.ts');
  const { ImageCodec } = await import('../sidecar/engine/image-codec.ts');
  const loadStart = performance.now();
  const model = openModel(dir);
  const [generator, codec] = await Promise.all([Generator.load(model), ImageCodec.load(model)]);
  const now = performance.now();
  process.stdout.write(JSON.stringify({ ready_ms: now, load_ms: now - loadStart }) + '\n');
  await Promise.all([generator.release(), codec.release()]);
} else {
  throw new Error('usage: cold-start-child.ts load|read <dir>');
}
