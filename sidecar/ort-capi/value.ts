import koffi from 'koffi';
import type { Allocator } from './allocator.ts';
import { ELEMENT_TYPES, elementCount, elementTypeOfArray, type ElementType } from './element-type.ts';
import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import { cpuMemoryInfo, MemoryInfo } from './memory.ts';
import { readTensorInfo, type TensorInfo } from './session.ts';
import { callOut } from './status.ts';

/**
 * An OrtValue holding a tensor. Three kinds of memory:
 * - JavaScript's (fromArray): zero-copy, JS writes the array and ORT sees it, ORT's outputs land in it.
 *   The value keeps the array referenced for as long as the value object lives.
 * - a slice of another value's memory (view): same memory, other dims; keeps its parent referenced,
 *   and the parent refuses release() while views of it live.
 * - ORT's (allocate, or an output ORT allocated): freed with the value.
 */
export class Value extends Handle {
  /** The JavaScript memory under this value, if any (kept alive by this reference). */
  readonly data: ArrayBufferView | undefined;
  readonly elementType: ElementType;
  readonly dims: readonly number[];
  readonly byteLength: number;
  private readonly parent: Value | undefined;
  #views = 0;

  /** A tensor over `data`'s own memory (CreateTensorWithDataAsOrtValue), CPU. */
  static fromArray(data: ArrayBufferView, dims: readonly number[], elementType: ElementType = elementTypeOfArray(data)): Value {
    const byteLength = checkedByteLength('Value.fromArray', dims, elementType, data.byteLength);
    // .buffer moves a small on-heap typed array to a fixed backing store first: its address then never moves.
    const address = koffi.address(data.buffer) + BigInt(data.byteOffset);
    return new Value(createWithData(cpuMemoryInfo(), address, byteLength, dims, elementType), elementType, dims, byteLength, data, undefined);
  }

  /**
   * A tensor over memory given by address and its memory info (e.g. a device buffer from an allocator).
   * The caller keeps that memory alive for as long as the value lives.
   */
  static fromPointer(memory: MemoryInfo, address: bigint, dims: readonly number[], elementType: ElementType, byteLength = elementCount(dims) * ELEMENT_TYPES[elementType].bytes): Value {
    const bytes = checkedByteLength('Value.fromPointer', dims, elementType, byteLength);
    return new Value(createWithData(memory, address, bytes, dims, elementType), elementType, dims, bytes, undefined, undefined);
  }

  /** A tensor in memory ORT allocates with `allocator` (CreateTensorAsOrtValue): device memory on CUDA. */
  static allocate(allocator: Allocator, dims: readonly number[], elementType: ElementType): Value {
    const shape = BigInt64Array.from(dims, BigInt);
    const pointer = callOut('CreateTensorAsOrtValue', allocator.pointer, shape, dims.length, ELEMENT_TYPES[elementType].id);
    return new Value(pointer, elementType, dims, elementCount(dims) * ELEMENT_TYPES[elementType].bytes, undefined, undefined);
  }

  /** Takes ownership of an OrtValue ORT made (e.g. a bound output); reads its type and shape. */
  static adopt(pointer: bigint): Value {
    const info = typeAndShapeOf(pointer);
    if (!info.elementType) {
      ortLibrary().fn.ReleaseValue(pointer);
      throw new Error(`Value.adopt: element type ${info.elementTypeId} is not one this binding handles`);
    }
    return new Value(pointer, info.elementType, info.dims, elementCount(info.dims) * ELEMENT_TYPES[info.elementType].bytes, undefined, undefined);
  }

  private constructor(pointer: bigint, elementType: ElementType, dims: readonly number[], byteLength: number, data: ArrayBufferView | undefined, parent: Value | undefined) {
    super(pointer, 'Value');
    this.elementType = elementType;
    this.dims = [...dims];
    this.byteLength = byteLength;
    this.data = data;
    this.parent = parent;
  }

  /**
   * A tensor over this value's memory from `offsetBytes` on, with other dims (and type): e.g. row r of
   * a [R, H, T, D] cache is view(r * H * T * D * elementSize, [1, H, T, D]).
   */
  view(offsetBytes: number, dims: readonly number[], elementType: ElementType = this.elementType): Value {
    const bytes = elementCount(dims) * ELEMENT_TYPES[elementType].bytes;
    if (!Number.isInteger(offsetBytes) || offsetBytes < 0 || offsetBytes + bytes > this.byteLength) {
      throw new Error(`Value.view: [${offsetBytes}, ${offsetBytes + bytes}) is outside this value's ${this.byteLength} bytes`);
    }
    const memory = this.memoryInfo();
    const pointer = createWithData(memory, this.dataPointer() + BigInt(offsetBytes), bytes, dims, elementType);
    const view = new Value(pointer, elementType, dims, bytes, this.data, this);
    this.#views++;
    return view;
  }

  /** The tensor's data address (GetTensorMutableData): host or device memory. */
  dataPointer(): bigint {
    return callOut('GetTensorMutableData', this.pointer);
  }

  /** Where the tensor lives (GetTensorMemoryInfo); the memory info belongs to this value. */
  memoryInfo(): MemoryInfo {
    return MemoryInfo.borrowed(callOut('GetTensorMemoryInfo', this.pointer));
  }

  /** Element type and dims as ORT sees them (GetTensorTypeAndShape). */
  typeAndShape(): TensorInfo {
    return typeAndShapeOf(this.pointer);
  }

  /** A copy of a CPU tensor's contents as a typed array (fp16/bf16 as Uint16 bits, bool as Uint8). */
  read(): ArrayBufferView {
    if (!this.memoryInfo().isCpu) throw new Error(`Value.read: the tensor is in ${this.memoryInfo().name} memory; only CPU tensors can be read`);
    const info = ELEMENT_TYPES[this.elementType];
    const copy = koffi.view(this.dataPointer(), this.byteLength).slice(0);
    return new info.array(copy, 0, this.byteLength / info.bytes);
  }

  protected beforeRelease(): void {
    if (this.#views > 0) throw new Error(`Value.release: ${this.#views} view(s) of this value are still alive; release them first`);
  }

  protected destroy(pointer: bigint): void {
    ortLibrary().fn.ReleaseValue(pointer);
    if (this.parent) this.parent.#views--;
  }
}

function createWithData(memory: MemoryInfo, address: bigint, byteLength: number, dims: readonly number[], elementType: ElementType): bigint {
  const shape = BigInt64Array.from(dims, BigInt);
  return callOut('CreateTensorWithDataAsOrtValue', memory.pointer, address, byteLength, shape, dims.length, ELEMENT_TYPES[elementType].id);
}

function checkedByteLength(what: string, dims: readonly number[], elementType: ElementType, available: number): number {
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${what}: dims [${dims.join(', ')}] must be non-negative integers`);
  const bytes = elementCount(dims) * ELEMENT_TYPES[elementType].bytes;
  if (bytes > available) throw new Error(`${what}: [${dims.join(', ')}] ${elementType} needs ${bytes} bytes, the memory has ${available}`);
  return bytes;
}

function typeAndShapeOf(value: bigint): TensorInfo {
  const info = callOut('GetTensorTypeAndShape', value);
  try {
    return readTensorInfo(info);
  } finally {
    ortLibrary().fn.ReleaseTensorTypeAndShapeInfo(info);
  }
}
