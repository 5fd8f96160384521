/**
 * Resident memory over many create-value / bind / run / release cycles through sidecar/ort-capi, with a
 * GC before each reading so the figure is native memory (docs/ort-capi.md, "Ownership rules").
 * Run: npx tsx bench/ort-capi-soak.ts [readings=16]   (2,000 cycles between readings)
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { IoBinding, Session, Value } from '../sidecar/ort-capi/index.ts';
import { addOneGraph } from '../test/ort-capi-graphs.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const readings = Number(process.argv[2] ?? 16);
const session = Session.fromBytes(addOneGraph(256).bytes);
const x = new Float32Array(256).fill(1);
const y = new Float32Array(256);

function cycle(): void {
  const xv = Value.fromArray(x, [256]);
  const yv = Value.fromArray(y, [256]);
  const binding = new IoBinding(session);
  binding.bindInput('x', xv).bindOutput('y', yv);
  binding.run();
  for (const out of binding.outputValues()) out.release();
  binding.release();
  xv.release();
  yv.release();
}

for (let r = 0; r < readings; r++) {
  gc();
  console.log(`cycles ${r * 2000}: RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(1)} MB`);
  for (let i = 0; i < 2000; i++) cycle();
}
session.release();
