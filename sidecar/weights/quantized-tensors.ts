import type { Checkpoint } from './checkpoint.ts';
import { CheckpointError } from '../../model/checkpoint-error.ts';
import { blobBytes, blocksPerRow, type NBits } from './quantize-nbits.ts';
import type { TensorEntry } from './safetensors.ts';

/**
 * How a bundle stores a Linear weight `NAME` [N, K] instead of the HF tensor:
 *   NAME.t       [K, N], already transposed (and in the graph's float type), so that ONNX Runtime
 *                has no Transpose / Cast to fold at load (slow: folded results are re-serialised
 *                as initializers; docs/benchmarks.md, "Bundles store matrices transposed");
 *   NAME.packed  U8 [N, kBlocks, blockSize·bits/8] and
 *   NAME.scales  F32 / F16 / BF16 [N, kBlocks] when quantized (quantize-nbits.ts layout).
 * Bits and block size follow from those shapes and K, so nothing else needs recording.
 */
export const transposedName = (name: string) => `${name}.t`;
/**
 * Rows [start, end) of a matrix, stored by a bundle as a matrix of its own in the same form
 * (lm_head's image-token rows): a graph that needs only those rows reads them as they are, where
 * from a checkpoint ONNX Runtime folds a Slice of the whole matrix at every load.
 */
export const rowsName = (name: string, [start, end]: [number, number]) => `${name}.rows_${start}_${end}`;
export const packedName = (name: string) => `${name}.packed`;
export const scalesName = (name: string) => `${name}.scales`;

export interface QuantizedMatrix {
  /** The HF name of the float weight it replaces. */
  name: string;
  bits: NBits;
  blockSize: number;
  rows: number; // N (out features)
  cols: number; // K (in features)
  packed: TensorEntry;
  scales: TensorEntry;
  /** MatMulNBits accuracy_level: 0 = the kernel's default (float math), 4 = int8 activations on CPU. */
  accuracyLevel: number;
}

/** A float matrix stored transposed, [K, N]: what MatMul's B wants as it is. */
export interface TransposedMatrix {
  name: string;
  transposed: TensorEntry;
}

/** A decoder matrix: the float weight as stored ([N, K]), stored transposed, or quantized. */
export type Matrix = TensorEntry | TransposedMatrix | QuantizedMatrix;

export const isQuantized = (m: Matrix): m is QuantizedMatrix => 'packed' in m;
export const isTransposed = (m: Matrix): m is TransposedMatrix => 'transposed' in m;

/**
 * The matrix `name` of shape [rows, cols]: the float tensor when present, else its quantized form.
 * Missing or misshapen tensors throw the CheckpointError naming the file.
 */
export function checkpointMatrix(ckpt: Checkpoint, name: string, rows: number, cols: number, accuracyLevel = 0): Matrix {
  if (ckpt.tensors.has(transposedName(name))) return { name, transposed: ckpt.tensor(transposedName(name), [cols, rows]) };
  if (ckpt.tensors.has(name) || !ckpt.tensors.has(packedName(name))) return ckpt.tensor(name, [rows, cols]);
  const packed = ckpt.tensor(packedName(name));
  const scales = ckpt.tensor(scalesName(name));
  const [n, kBlocks, blob] = packed.shape;
  const blockSize = blockSizeFor(cols, kBlocks);
  const bits = blockSize ? (blob * 8) / blockSize : NaN;
  if (packed.dtype !== 'U8' || packed.shape.length !== 3 || n !== rows || !blockSize || (bits !== 4 && bits !== 8) || blob !== blobBytes(bits, blockSize)) {
    throw new CheckpointError(packed.file, `tensor ${packed.name} [${packed.shape}] ${packed.dtype} is not a 4- or 8-bit packing of a [${rows}, ${cols}] matrix`);
  }
  ckpt.tensor(scales.name, [rows, kBlocks]);
  if (!['F32', 'F16', 'BF16'].includes(scales.dtype)) throw new CheckpointError(scales.file, `tensor ${scales.name} must be a float tensor, got ${scales.dtype}`);
  return { name, bits: bits as NBits, blockSize, rows, cols, packed, scales, accuracyLevel };
}

/** The power-of-two block size (≥ 16) that cuts `cols` into `kBlocks` blocks, if there is one. */
function blockSizeFor(cols: number, kBlocks: number): number | undefined {
  for (let size = 16; size <= Math.max(16, 2 * cols); size *= 2) if (blocksPerRow(cols, size) === kBlocks) return size;
  return undefined;
}
