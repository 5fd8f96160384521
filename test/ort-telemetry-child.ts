import ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';

/**
 * `node --import tsx test/ort-telemetry-child.ts session.ts|onnxruntime-node`: creates and runs one
 * ONNX Runtime session, through sidecar/onnx/session.ts or straight from onnxruntime-node.
 */
const g = new GraphBuilder('double');
const x = g.input('x', DataType.FLOAT, [1]);
g.op('Add', [x, x], {}, { output: 'y' });
g.output('y', DataType.FLOAT, [1]);
const session =
  process.argv[2] === 'session.ts'
    ? await (await import('../sidecar/onnx/session.ts')).createSession(g.build(), { executionProviders: ['cpu'] })
    : await ort.InferenceSession.create(g.build().bytes, { executionProviders: ['cpu'] });
const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1), [1]) });
await session.release();
process.stdout.write(`${(out.y.data as Float32Array)[0]}\n`);
