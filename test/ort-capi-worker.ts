// Runs y = x + 1 through sidecar/ort-capi inside a worker thread (started by sidecar/engine/thread-bootstrap.js).
import { parentPort, workerData } from 'node:worker_threads';
import { IoBinding, Session, Value } from '../sidecar/ort-capi/index.ts';
import { addOneGraph } from './ort-capi-graphs.ts';

const x = Float32Array.from(workerData.x as number[]);
const y = new Float32Array(x.length);
using session = Session.fromBytes(addOneGraph(x.length).bytes);
using binding = new IoBinding(session);
using xv = Value.fromArray(x, [x.length]);
using yv = Value.fromArray(y, [y.length]);
binding.bindInput('x', xv).bindOutput('y', yv);
binding.run();
parentPort!.postMessage(Array.from(y));
