import { describe, expect, it } from 'vitest';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { IoBinding, ortLibrary, Session, Value } from '../sidecar/ort-capi/index.ts';

function addOne(n: number) {
  const g = new GraphBuilder('add_one');
  const x = g.input('x', DataType.FLOAT, [n]);
  g.op('Add', [x, g.float(1)], {}, { output: 'y' });
  g.output('y', DataType.FLOAT, [n]);
  return g.build();
}

describe('ort-capi', () => {
  it('smoke', () => {
    expect(ortLibrary().version).toBe('1.30.0');
    const session = Session.fromBytes(addOne(4).bytes);
    expect(session.inputNames).toEqual(['x']);
    const x = new Float32Array([1, 2, 3, 4]);
    const y = new Float32Array(4);
    const xv = Value.fromArray(x, [4]);
    const yv = Value.fromArray(y, [4]);
    const b = new IoBinding(session);
    b.bindInput('x', xv).bindOutput('y', yv);
    b.run();
    expect(Array.from(y)).toEqual([2, 3, 4, 5]);
    b.release(); xv.release(); yv.release(); session.release();
  });
});
