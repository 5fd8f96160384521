/**
 * Resident memory over many create-value / bind / run / release cycles through sidecar/ort-capi, with a
 * GC before each reading so the figure is native memory (docs/ort-capi.md, "Ownership rules").
 * Run: npx tsx bench/ort-capi-soak.ts [readings=16]   (2,000 cycles between readings)
 */
import { Session } from '../sidecar/ort-capi/index.ts';
import { addOneGraph } from '../test/ort-capi-graphs.ts';
import { bindRunRelease, exposeGc } from '../test/ort-capi-cycle.ts';

const gc = exposeGc();
const readings = Number(process.argv[2] ?? 16);
const session = Session.fromBytes(addOneGraph(256).bytes);
const x = new Float32Array(256).fill(1);
const y = new Float32Array(256);
const cycle = () => bindRunRelease(session, x, y);

for (let r = 0; r < readings; r++) {
  gc();
  console.log(`cycles ${r * 2000}: RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(1)} MB`);
  for (let i = 0; i < 2000; i++) cycle();
}
session.release();
