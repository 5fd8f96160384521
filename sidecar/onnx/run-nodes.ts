import { createRequire } from 'node:module';
import type { BuiltModel } from './graph-builder.ts';

const onnx = (createRequire(import.meta.url)('onnx-proto') as typeof import('onnx-proto')).onnx;

/**
 * Nodes a run executes: those that read a graph input, directly or not. Nodes of initializers
 * alone (the weights' Casts, packed matrices' Concats) are folded once when the session loads.
 */
export function runNodeCount(model: BuiltModel): number {
  const graph = onnx.ModelProto.decode(model.bytes).graph!;
  const varying = new Set(graph.input!.map((i) => i.name!));
  let count = 0;
  for (const node of graph.node!) {
    if (!node.input!.some((name) => varying.has(name))) continue;
    count++;
    for (const out of node.output!) varying.add(out);
  }
  return count;
}
