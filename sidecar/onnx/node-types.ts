import { createRequire } from 'node:module';
import type { onnx } from 'onnx-proto';
import type { BuiltModel } from './graph-builder.ts';

const require = createRequire(import.meta.url);
const proto = (require('onnx-proto') as typeof import('onnx-proto')).onnx;

/** ONNX TensorProto.DataType → the names ONNX Runtime's kernel tables use. */
const TYPE_NAMES: Record<number, string> = {
  1: 'float', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'double', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

/** One node as an execution provider sees it: which kernel it needs. */
export interface TypedNode {
  /** Graph path: the main graph's name, then `/body` for a Loop body. */
  graph: string;
  name: string;
  domain: string; // '' for ai.onnx
  opType: string;
  /** Element type of each input ('' for an omitted optional input). */
  inputTypes: string[];
}

/**
 * Every node of a built model with the element types of its inputs, Loop / If bodies included.
 * Types come from the declared graph inputs, initializers and body inputs, and are propagated
 * through the nodes with each op's output-type rule (outputType); an op without a rule here
 * is an error rather than a guess.
 */
export function typedNodes(model: BuiltModel): TypedNode[] {
  const decoded = proto.ModelProto.decode(model.bytes);
  const out: TypedNode[] = [];
  walk(decoded.graph!, decoded.graph!.name ?? 'main', new Map(), out);
  return out;
}

function walk(graph: onnx.IGraphProto, path: string, outer: Map<string, number>, out: TypedNode[]): void {
  const types = new Map(outer);
  for (const init of graph.initializer ?? []) types.set(init.name!, init.dataType!);
  for (const v of graph.input ?? []) types.set(v.name!, v.type!.tensorType!.elemType!);
  for (const node of graph.node ?? []) {
    const inputTypes = (node.input ?? []).map((name) => {
      if (name === '') return 0;
      const t = types.get(name);
      if (t === undefined) throw new Error(`${path}: node ${node.name} (${node.opType}) reads ${name}, which has no known type`);
      return t;
    });
    out.push({ graph: path, name: node.name ?? '', domain: node.domain ?? '', opType: node.opType!, inputTypes: inputTypes.map((t) => (t ? TYPE_NAMES[t] ?? `type${t}` : '')) });
    for (const attr of node.attribute ?? []) if (attr.g) walk(attr.g, `${path}/${attr.name}`, types, out);
    const outputs = outputTypes(node, inputTypes);
    (node.output ?? []).forEach((name, i) => {
      if (name) types.set(name, outputs[Math.min(i, outputs.length - 1)]);
    });
  }
}

const INT64 = 7;
const BOOL = 9;
const FLOAT = 1;
const BOOLEAN_OPS = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Not', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);
/** Ops whose outputs all take the type of their first input. */
const SAME_AS_FIRST = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Pow', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Sin', 'Cos', 'Tanh', 'Sigmoid', 'Relu', 'Softmax',
  'Min', 'Max', 'Identity', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Gather', 'GatherElements',
  'Expand', 'Tile', 'ScatterElements', 'ScatterND', 'CumSum', 'Range', 'ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin',
  'ReduceSumSquare', 'Conv', 'Resize', 'MatMul', 'RMSNormalization', 'SimplifiedLayerNormalization', 'MatMulNBits', 'FusedMatMul',
  'RotaryEmbedding', 'SkipSimplifiedLayerNormalization', 'QuickGelu', 'Flatten', 'Gemm',
]);

function outputTypes(node: onnx.INodeProto, inputs: number[]): number[] {
  const op = node.opType!;
  const attr = (name: string) => node.attribute?.find((a) => a.name === name);
  if (op === 'Cast') return [Number(attr('to')!.i)];
  if (BOOLEAN_OPS.has(op)) return [BOOL];
  if (INT64_OPS.has(op)) return [INT64];
  if (op === 'ConstantOfShape') return [attr('value')?.t?.dataType ?? FLOAT];
  if (op === 'Where') return [inputs[1]];
  if (op === 'TopK') return [inputs[0], INT64];
  if (op === 'LayerNormalization') return [inputs[0], FLOAT, FLOAT];
  // Attention-23 and GQA: Y in the query's type, presents in the cache's type
  if (op === 'Attention' || op === 'GroupQueryAttention') return [inputs[0], inputs[op === 'Attention' ? 4 : 3] || inputs[1], inputs[op === 'Attention' ? 5 : 4] || inputs[2]];
  if (op === 'Loop' || op === 'If') {
    const body = attr(op === 'Loop' ? 'body' : 'then_branch')!.g!;
    return (body.output ?? []).slice(op === 'Loop' ? 1 : 0).map((o) => o.type!.tensorType!.elemType!);
  }
  if (SAME_AS_FIRST.has(op)) return [inputs.find((t) => t) ?? FLOAT];
  throw new Error(`node ${node.name}: no output-type rule for ${node.domain ? `${node.domain}.` : ''}${op} in node-types.ts`);
}
