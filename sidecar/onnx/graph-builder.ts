import path from 'node:path';
import { createRequire } from 'node:module';
import type { onnx } from 'onnx-proto';
import type { TensorEntry } from '../weights/safetensors.ts';

// onnx-proto ships protobufjs static code for onnx.proto as CommonJS.
const require = createRequire(import.meta.url);
const proto = (require('onnx-proto') as typeof import('onnx-proto')).onnx;

/** ONNX TensorProto.DataType values used by the project. */
export const DataType = {
  FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, BFLOAT16: 16,
} as const;
export type DataTypeId = (typeof DataType)[keyof typeof DataType];

const SAFETENSORS_TO_ONNX: Record<string, DataTypeId> = {
  F32: DataType.FLOAT, F16: DataType.FLOAT16, BF16: DataType.BFLOAT16,
  I64: DataType.INT64, I32: DataType.INT32, I8: DataType.INT8, U8: DataType.UINT8, BOOL: DataType.BOOL,
};

const CAST_SUFFIX: Partial<Record<DataTypeId, string>> = { [DataType.FLOAT]: 'f32', [DataType.FLOAT16]: 'f16', [DataType.BFLOAT16]: 'bf16' };

/** The type a checkpoint tensor must be cast to for a graph computing in `floatType`, if any. */
function castTarget(entry: TensorEntry, floatType: DataTypeId): DataTypeId | undefined {
  const stored = SAFETENSORS_TO_ONNX[entry.dtype];
  const isFloat = stored === DataType.FLOAT || stored === DataType.FLOAT16 || stored === DataType.BFLOAT16;
  return isFloat && stored !== floatType ? floatType : undefined;
}

/** A dimension: a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

export type AttrValue =
  | number
  | bigint
  | string
  | number[]
  | string[]
  | { float: number }
  | { floats: number[] }
  | { tensor: onnx.ITensorProto }
  | { graph: GraphBuilder };

export interface NodeOptions {
  domain?: string;
  /** Number of outputs (fresh names) or explicit output names. Default: one fresh output. */
  outputs?: number | string[];
  name?: string;
}

/** Opsets the project builds against: ONNX 23 (RMSNormalization, Attention) and ORT's contrib domain. */
export const DEFAULT_OPSETS: Record<string, number> = { '': 23, 'com.microsoft': 1 };

/**
 * Builds one ONNX graph node by node. Weights come from safetensors files as external data
 * (file + offset), so building a 7B graph allocates no weight memory in JavaScript; every
 * external file must live in one directory, which ONNX Runtime reads them from.
 */
export class GraphBuilder {
  readonly name: string;
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  /** Checkpoint tensor name → the value a node reads (the tensor, or its Cast). */
  private readonly weightNames = new Map<string, string>();
  private readonly storedWeights = new Set<string>();
  private counter = 0;
  /** Directory of the external weight files (shared with subgraphs). */
  externalDir: string | undefined;
  /**
   * The float type checkpoint weights are cast to (read on the root graph). float32 by default;
   * an fp16/bf16 graph for a GPU sets it so its weights stay half-size in memory.
   */
  floatType: DataTypeId = DataType.FLOAT;
  private readonly parent: GraphBuilder | undefined;

  constructor(name: string, parent?: GraphBuilder) {
    this.name = name;
    this.parent = parent;
  }

  /** A subgraph (Loop / If body). Its names stay unique across the whole model. */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this);
  }

  fresh(hint: string): string {
    if (this.parent) return this.parent.fresh(`${this.name}/${hint}`);
    return `${hint}_${this.counter++}`;
  }

  input(name: string, elemType: DataTypeId, dims: Dim[] | undefined): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: DataTypeId, dims: Dim[] | undefined): string {
    this.outputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Adds a node and returns its output names. */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string[] {
    const outputs =
      typeof opts.outputs === 'object'
        ? opts.outputs
        : Array.from({ length: opts.outputs ?? 1 }, (_, i) => this.fresh(`${opType}${i ? `_out${i}` : ''}`));
    this.nodes.push({
      opType,
      domain: opts.domain ?? '',
      name: opts.name ?? this.fresh(`n_${opType}`),
      input: inputs,
      output: outputs,
      attribute: Object.entries(attrs).map(([name, value]) => attribute(name, value)),
    });
    return outputs;
  }

  /** Adds a node with exactly one output and returns its name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: Omit<NodeOptions, 'outputs'> & { output?: string } = {}): string {
    return this.node(opType, inputs, attrs, { ...opts, outputs: opts.output ? [opts.output] : 1 })[0];
  }

  /** An inline constant initializer (small tensors: shapes, axes, tables). */
  constant(hint: string, elemType: DataTypeId, dims: number[], values: ArrayLike<number> | ArrayLike<bigint>): string {
    const name = this.fresh(hint);
    this.root().initializers.push(tensorProto(name, elemType, dims, values));
    return name;
  }

  int64s(values: number[], hint = 'const_i64'): string {
    return this.constant(hint, DataType.INT64, [values.length], values.map(BigInt));
  }

  int64(value: number, hint = 'const_i64_scalar'): string {
    return this.constant(hint, DataType.INT64, [], [BigInt(value)]);
  }

  float(value: number, hint = 'const_f32_scalar'): string {
    return this.constant(hint, DataType.FLOAT, [], [value]);
  }

  /** An inline float32 initializer with its own (unique) name. */
  floats(hint: string, dims: number[], values: ArrayLike<number>): string {
    return this.constant(hint, DataType.FLOAT, dims, values);
  }

  /**
   * A checkpoint tensor as an external initializer in its stored dtype. A float tensor is followed
   * by a Cast to the root graph's `floatType` (float32 unless set) unless it has that type already;
   * ONNX Runtime folds the Cast once at session creation. Integer tensors (packed quantized
   * weights) are returned as stored. Asking for the same tensor twice returns the same name.
   */
  weight(entry: TensorEntry): string {
    const root = this.root();
    const known = root.weightNames.get(entry.name);
    if (known) return known;
    const stored = root.storedWeight(entry);
    const target = castTarget(entry, root.floatType);
    const value = target === undefined ? stored : root.op('Cast', [stored], { to: target }, { output: `${entry.name}.${CAST_SUFFIX[target] ?? target}` });
    root.weightNames.set(entry.name, value);
    return value;
  }

  /**
   * Rows of a checkpoint tensor (Gather on axis 0 at `indices`), gathered in the stored dtype and
   * cast after: weight()'s Cast of the whole table would be folded at every load into a second,
   * converted copy of it (65536 × C for the embedding), when a step reads a few rows.
   */
  gatherWeightRows(entry: TensorEntry, indices: string): string {
    const rows = this.op('Gather', [this.root().storedWeight(entry), indices], { axis: 0 });
    const target = castTarget(entry, this.root().floatType);
    return target === undefined ? rows : this.op('Cast', [rows], { to: target });
  }

  /** A checkpoint tensor as an external initializer in its stored dtype (registered once). */
  private storedWeight(entry: TensorEntry): string {
    const root = this.root();
    if (root.storedWeights.has(entry.name)) return entry.name;
    const dir = path.dirname(entry.file);
    if (root.externalDir === undefined) root.externalDir = dir;
    else if (root.externalDir !== dir) {
      throw new Error(`weights must share one directory: ${entry.file} is not in ${root.externalDir}`);
    }
    const elemType = SAFETENSORS_TO_ONNX[entry.dtype];
    if (elemType === undefined) throw new Error(`tensor ${entry.name}: dtype ${entry.dtype} cannot be an ONNX initializer`);
    root.initializers.push({
      name: entry.name,
      dims: entry.shape,
      dataType: elemType,
      dataLocation: proto.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: path.basename(entry.file) },
        { key: 'offset', value: String(entry.offset) },
        { key: 'length', value: String(entry.byteLength) },
      ],
    });
    root.storedWeights.add(entry.name);
    return entry.name;
  }

  toGraphProto(): onnx.IGraphProto {
    return {
      name: this.name,
      node: this.nodes,
      initializer: this.parent ? [] : this.initializers,
      input: this.inputs,
      output: this.outputs,
    };
  }

  /** Serialises the model; pass `externalDir` to ONNX Runtime with the bytes (see session.ts). */
  build(opsets: Record<string, number> = DEFAULT_OPSETS): BuiltModel {
    const model = proto.ModelProto.create({
      irVersion: 10,
      producerName: 'anole-serve',
      opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
      graph: this.toGraphProto(),
    });
    return { bytes: proto.ModelProto.encode(model).finish(), externalDir: this.externalDir };
  }

  /** The top-level graph: where values derived from weights belong, so Loop bodies read them from the outer scope. */
  root(): GraphBuilder {
    return this.parent ? this.parent.root() : this;
  }
}

export interface BuiltModel {
  bytes: Uint8Array;
  externalDir: string | undefined;
}

function valueInfo(name: string, elemType: DataTypeId, dims: Dim[] | undefined): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined,
      },
    },
  };
}

function tensorProto(name: string, elemType: DataTypeId, dims: number[], values: ArrayLike<number> | ArrayLike<bigint>): onnx.ITensorProto {
  const t: onnx.ITensorProto = { name, dims, dataType: elemType };
  switch (elemType) {
    case DataType.FLOAT:
      t.rawData = new Uint8Array(Float32Array.from(values as ArrayLike<number>).buffer);
      break;
    case DataType.INT64:
      t.rawData = new Uint8Array(BigInt64Array.from(Array.from(values as ArrayLike<bigint | number>, (v) => BigInt(v))).buffer);
      break;
    case DataType.INT32:
      t.rawData = new Uint8Array(Int32Array.from(values as ArrayLike<number>).buffer);
      break;
    case DataType.BOOL:
    case DataType.UINT8:
      t.rawData = Uint8Array.from(values as ArrayLike<number>);
      break;
    default:
      throw new Error(`inline constants of data type ${elemType} are not supported`);
  }
  return t;
}

function attribute(name: string, value: AttrValue): onnx.IAttributeProto {
  const T = proto.AttributeProto.AttributeType;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use { float } for non-integer ${value}`);
    return { name, type: T.INT, i: value };
  }
  if (typeof value === 'bigint') return { name, type: T.INT, i: Number(value) };
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) {
      return { name, type: T.STRINGS, strings: (value as string[]).map((s) => new TextEncoder().encode(s)) };
    }
    return { name, type: T.INTS, ints: value as number[] };
  }
  if ('float' in value) return { name, type: T.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: T.FLOATS, floats: value.floats };
  if ('tensor' in value) return { name, type: T.TENSOR, t: value.tensor };
  return { name, type: T.GRAPH, g: value.graph.toGraphProto() };
}
