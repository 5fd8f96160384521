import fs from 'node:fs';
import type { TypedNode } from './node-types.ts';

/** One registration from cuda-kernels.json (the CUDA EP's rows of https://github.com/microsoft/onnxruntime/blob/main/docs/OperatorKernels.md). */
interface KernelEntry {
  versions: string;
  inputs: string[];
  types: Record<string, string[]>;
}

interface KernelTable {
  source: { repository: string; path: string; commit: string; onnxruntimeVersion: string };
  kernels: Record<string, Record<string, KernelEntry>>;
}

export const CUDA_KERNELS: KernelTable = JSON.parse(fs.readFileSync(new URL('./cuda-kernels.json', import.meta.url), 'utf8'));

/**
 * Why ONNX Runtime's CUDA execution provider could not run `node`, or undefined when it has a
 * kernel: the op must be registered for the graph's opset and every input's type must be one its
 * type variable admits (a variable shared by several fixed inputs must get one type).
 */
export function missingCudaKernel(node: TypedNode, opsets: Record<string, number>, table: KernelTable = CUDA_KERNELS): string | undefined {
  const domain = node.domain || 'ai.onnx';
  const what = `${domain}.${node.opType}(${node.inputTypes.map((t) => t || '-').join(', ')})`;
  const entry = table.kernels[domain]?.[node.opType];
  if (!entry) return `${what}: no CUDA kernel is listed for this op`;
  const opset = opsets[node.domain] ?? 1;
  if (!coversVersion(entry.versions, opset)) return `${what}: the CUDA kernel covers versions ${entry.versions}, not opset ${opset}`;
  const bound = new Map<string, string>();
  for (let i = 0; i < node.inputTypes.length; i++) {
    const type = node.inputTypes[i];
    if (!type) continue;
    const spec = i < entry.inputs.length ? entry.inputs[i] : entry.inputs[entry.inputs.length - 1];
    if (i >= entry.inputs.length && !spec.endsWith('...')) return `${what}: the CUDA kernel takes ${entry.inputs.length} inputs`;
    const variable = spec.replace(/\.\.\.$/, '');
    if (variable === '*') continue;
    const allowed = entry.types[variable] ?? [variable]; // a fixed type such as int64
    if (!allowed.includes(type)) return `${what}: input ${i} is ${type}, the CUDA kernel's ${variable} admits ${allowed.join(', ')}`;
    // variadic inputs (Loop's carried values) may differ from each other
    if (!spec.endsWith('...') && entry.types[variable] && bound.has(variable) && bound.get(variable) !== type) {
      return `${what}: inputs sharing ${variable} have different types (${bound.get(variable)}, ${type})`;
    }
    bound.set(variable, type);
  }
  return undefined;
}

/** "13+" covers 13 and later, "[13, 18]" 13 to 18, "23" only 23. */
function coversVersion(versions: string, opset: number): boolean {
  const open = /^(\d+)\+$/.exec(versions);
  if (open) return opset >= Number(open[1]);
  const range = /^\[(\d+), (\d+)\]$/.exec(versions);
  if (range) return opset >= Number(range[1]) && opset <= Number(range[2]);
  return opset === Number(versions);
}
