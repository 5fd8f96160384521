import { createRequire } from 'node:module';
import type { onnx } from 'onnx-proto';
import { missingCudaKernel } from './cuda-kernels.ts';
import { DEFAULT_OPSETS, type BuiltModel } from './graph-builder.ts';
import { typedNodes } from './node-types.ts';

const require = createRequire(import.meta.url);
const proto = (require('onnx-proto') as typeof import('onnx-proto')).onnx;

/**
 * Which inputs ONNX Runtime's CUDA kernels read from host memory and which outputs they write there
 * (`InputMemoryType(OrtMemTypeCPUInput, i)` / `OutputMemoryType(OrtMemTypeCPUOutput, i)` in the
 * kernels' registrations, microsoft/onnxruntime onnxruntime/core/providers/cuda/ and contrib_ops/cuda/).
 * Only rows read from the source are listed: an op missing here is taken to read everything on the
 * device, which can only make the prediction below report a copy ONNX Runtime would not make.
 */
export const CUDA_HOST_MEMORY = {
  inputs: {
    Reshape: [1], // shape (tensor/reshape.cc)
    Expand: [1], // shape (tensor/expand.cc)
    TopK: [1], // K (math/topk.cc, opset 10+)
    Range: [0, 1, 2], // start, limit, delta (generator/range.cc)
    'com.microsoft.GroupQueryAttention': [6], // total_sequence_length (bert/group_query_attention.cc)
  } as Record<string, number[]>,
  outputs: { Shape: [0], Size: [0] } as Record<string, number[]>,
};

/** A value that would cross between host and device memory at every run of the session. */
export interface HostCopy {
  value: string;
  /** The node (or graph output) that reads it, and where it comes from. */
  to: string;
  from: string;
  direction: 'to device' | 'to host';
}

/**
 * The copies between host and device memory ONNX Runtime would make in `model` on the CUDA execution
 * provider: Memcpy nodes it inserts after placing nodes, and graph inputs bound on one side but read
 * on the other. A session with none has every run's work on the device, which is what capturing it as
 * a CUDA graph needs (ORT refuses capture when the graph has Memcpy nodes; nodes it keeps on the CPU
 * for shapes are allowed). The placement follows ORT's own rule (framework/fallback_cpu_capability.cc,
 * GetCpuPreferredNodes): a node that reads host values (a Shape's output, another such node's) stays on
 * the host when every other input is a small initializer or a graph input, none is fp16 / bf16, and
 * the kernel would not read that value on the host anyway. `hostInputs`: graph inputs bound in host memory.
 */
export function predictHostCopies(model: BuiltModel, hostInputs: Iterable<string> = []): HostCopy[] {
  const graph = proto.ModelProto.decode(model.bytes).graph!;
  const nodes = graph.node ?? [];
  const typed = typedNodes(model);
  if (typed.length !== nodes.length) throw new Error(`predictHostCopies: ${graph.name} has subgraphs, which this model of ONNX Runtime does not cover`);
  const keyOf = (n: onnx.INodeProto) => (n.domain ? `${n.domain}.${n.opType}` : n.opType!);
  const hostSlots = (n: onnx.INodeProto) => CUDA_HOST_MEMORY.inputs[keyOf(n)] ?? [];

  const small = new Set((graph.initializer ?? []).filter((t) => (t.dims ?? []).reduce((a, d) => a * Number(d), 1) <= 100).map((t) => t.name!));
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name!));
  const graphInputs = new Set((graph.input ?? []).map((v) => v.name!));
  const boundOnHost = new Set(hostInputs);
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => o && producer.set(o, i)));
  const consumers = new Map<string, number[]>();
  nodes.forEach((n, i) => (n.input ?? []).forEach((x) => x && consumers.set(x, [...(consumers.get(x) ?? []), i])));

  // values in host memory (ORT's cpu_output_args), and the nodes placed on the CPU
  const onHost = new Set<string>();
  const onCpu = new Set<number>();
  const candidates = new Set<number>();
  const markHost = (o: string) => {
    if (!o) return;
    onHost.add(o);
    for (const c of consumers.get(o) ?? []) candidates.add(c);
  };
  const placeOnCpu = (i: number) => {
    onCpu.add(i);
    (nodes[i].output ?? []).forEach(markHost);
  };
  nodes.forEach((n, i) => {
    if (missingCudaKernel(typed[i], DEFAULT_OPSETS) !== undefined) return placeOnCpu(i); // no CUDA kernel: ORT runs it on the CPU
    for (const slot of CUDA_HOST_MEMORY.outputs[keyOf(n)] ?? []) markHost(n.output?.[slot] ?? '');
  });
  // nodes are in topological order (the graph builder emits them so): one pass in order places them
  for (let i = 0; i < nodes.length; i++) {
    if (!candidates.has(i) || onCpu.has(i)) continue;
    const n = nodes[i];
    const hostOnly = (n.input ?? []).every((x, slot) => {
      if (!x) return true;
      const type = typed[i].inputTypes[slot];
      if (type === 'float16' || type === 'bfloat16') return false;
      if (small.has(x) || graphInputs.has(x)) return true;
      return onHost.has(x) && !hostSlots(n).includes(slot);
    });
    if (hostOnly) placeOnCpu(i);
  }

  const isHost = (x: string) => onHost.has(x) || boundOnHost.has(x);
  const source = (x: string) => (producer.has(x) ? `${nodes[producer.get(x)!].opType} ${nodes[producer.get(x)!].name}` : graphInputs.has(x) ? `graph input ${x}` : x);
  const copies: HostCopy[] = [];
  nodes.forEach((n, i) => {
    const where = `${n.opType} ${n.name}${onCpu.has(i) ? ' (on the CPU)' : ''}`;
    (n.input ?? []).forEach((x, slot) => {
      if (!x || initializers.has(x)) return; // initializers are placed where they are read, once
      const wantsHost = onCpu.has(i) || hostSlots(n).includes(slot);
      if (wantsHost && !isHost(x)) copies.push({ value: x, to: `${where}, input ${slot}`, from: source(x), direction: 'to host' });
      if (!wantsHost && isHost(x)) copies.push({ value: x, to: `${where}, input ${slot}`, from: source(x), direction: 'to device' });
    });
  });
  for (const out of graph.output ?? []) {
    if (onHost.has(out.name!)) copies.push({ value: out.name!, to: `graph output ${out.name}`, from: source(out.name!), direction: 'to device' });
  }
  return copies;
}
