import { GraphBuilder, type BuiltModel, type DataTypeId, type Dim } from '../onnx/graph-builder.ts';

/**
 * A graph that copies each input to an output (`NAME` → `NAME.copy`): run with its inputs bound in
 * host memory and its outputs in device memory (or the reverse), ONNX Runtime moves the bytes. Engine
 * v2 uploads a step's few numbers and downloads its tokens this way (docs/engine-v2.md), so the decode
 * graphs themselves read and write device memory only.
 */
export function buildCopyGraph(name: string, values: [string, DataTypeId, Dim[]][]): BuiltModel {
  const g = new GraphBuilder(name);
  for (const [value, type, dims] of values) {
    g.input(value, type, dims);
    g.op('Identity', [value], {}, { output: copyName(value) });
    g.output(copyName(value), type, dims);
  }
  return g.build();
}

export const copyName = (name: string) => `${name}.copy`;
