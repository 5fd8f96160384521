import v8 from 'node:v8';
import vm from 'node:vm';
import { IoBinding, type Session, Value } from '../sidecar/ort-capi/index.ts';

/**
 * One create-value / bind / run / read / release cycle on an add-one session (addOneGraph) of
 * x's length, writing into y: what the RSS test (ort-capi.test.ts) and its longer run
 * (bench/ort-capi-soak.ts) repeat, so that both measure the same cycle.
 */
export function bindRunRelease(session: Session, x: Float32Array, y: Float32Array): void {
  const xv = Value.fromArray(x, [x.length]);
  const yv = Value.fromArray(y, [y.length]);
  const binding = new IoBinding(session);
  binding.bindInput('x', xv).bindOutput('y', yv);
  binding.run();
  for (const out of binding.outputValues()) out.release();
  binding.release();
  xv.release();
  yv.release();
}

/** A full garbage collection on demand, so that an RSS reading is native memory, not JS heap waiting for a GC. */
export function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}
