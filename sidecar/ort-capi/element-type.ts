/** Tensor element types the engine uses: ONNXTensorElementDataType ids and their JS memory. */
export type ElementType = 'float32' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'bool' | 'uint8';

interface ElementInfo {
  id: number;
  bytes: number;
  /** The typed array that holds its bits: fp16 and bf16 as Uint16 bits, bool as bytes. */
  array: new (buffer: ArrayBuffer, byteOffset: number, length: number) => ArrayBufferView;
}

export const ELEMENT_TYPES: Record<ElementType, ElementInfo> = {
  float32: { id: 1, bytes: 4, array: Float32Array },
  uint8: { id: 2, bytes: 1, array: Uint8Array },
  int32: { id: 6, bytes: 4, array: Int32Array },
  int64: { id: 7, bytes: 8, array: BigInt64Array },
  bool: { id: 9, bytes: 1, array: Uint8Array },
  float16: { id: 10, bytes: 2, array: Uint16Array },
  bfloat16: { id: 16, bytes: 2, array: Uint16Array },
};

export function elementTypeOfId(id: number): ElementType | undefined {
  return (Object.keys(ELEMENT_TYPES) as ElementType[]).find((t) => ELEMENT_TYPES[t].id === id);
}

/** The element type a typed array implies when the caller does not say (Uint16 is ambiguous: fp16 or bf16). */
export function elementTypeOfArray(data: ArrayBufferView): ElementType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array) return 'uint8';
  throw new Error(`Value.fromArray: say the element type of a ${data.constructor.name} (e.g. 'float16' or 'bfloat16' for Uint16Array)`);
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
