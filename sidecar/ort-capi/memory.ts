import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import { callOut } from './status.ts';

/** OrtAllocatorType: a plain device allocator or ORT's arena over it. */
export type AllocatorKind = 'device' | 'arena';
const ALLOCATOR_KINDS: Record<AllocatorKind, number> = { device: 0, arena: 1 };
/** OrtMemType: the provider's own memory, or CPU memory a non-CPU provider reads (input) or writes (output). */
export type MemType = 'default' | 'cpuInput' | 'cpuOutput';
const MEM_TYPES: Record<MemType, number> = { default: 0, cpuInput: -2, cpuOutput: -1 };

/**
 * Where a tensor lives (OrtMemoryInfo). Creating one needs no device: a "Cuda" memory info is a
 * description that only a CUDA session can use.
 */
export class MemoryInfo extends Handle {
  /** CPU memory (CreateCpuMemoryInfo). */
  static cpu(kind: AllocatorKind = 'device', memType: MemType = 'default'): MemoryInfo {
    return new MemoryInfo(callOut('CreateCpuMemoryInfo', ALLOCATOR_KINDS[kind], MEM_TYPES[memType]), true);
  }

  /** Memory of CUDA device `deviceId` (CreateMemoryInfo("Cuda", ...)). */
  static cuda(deviceId = 0, kind: AllocatorKind = 'device', memType: MemType = 'default'): MemoryInfo {
    return MemoryInfo.create('Cuda', deviceId, kind, memType);
  }

  /** Any provider's memory by ORT's name for it ("Cpu", "Cuda", "CudaPinned", ...). */
  static create(name: string, deviceId: number, kind: AllocatorKind = 'device', memType: MemType = 'default'): MemoryInfo {
    return new MemoryInfo(callOut('CreateMemoryInfo', name, ALLOCATOR_KINDS[kind], deviceId, MEM_TYPES[memType]), true);
  }

  /** A memory info that belongs to another object (a value's, an allocator's): release() leaves it alone. */
  static borrowed(pointer: bigint): MemoryInfo {
    return new MemoryInfo(pointer, false);
  }

  private constructor(
    pointer: bigint,
    private readonly owned: boolean,
  ) {
    super(pointer, 'MemoryInfo');
  }

  get name(): string {
    return callOut<string>('MemoryInfoGetName', this.pointer);
  }

  get deviceId(): number {
    return callOut<number>('MemoryInfoGetId', this.pointer);
  }

  get memType(): MemType {
    const v = callOut<number>('MemoryInfoGetMemType', this.pointer);
    return (Object.keys(MEM_TYPES) as MemType[]).find((k) => MEM_TYPES[k] === v)!;
  }

  get allocatorKind(): AllocatorKind {
    return callOut<number>('MemoryInfoGetType', this.pointer) === 1 ? 'arena' : 'device';
  }

  /** True for host memory that JavaScript can read (CPU, CUDA's pinned host memory, a provider's CPU in/out). */
  get isCpu(): boolean {
    return this.name === 'Cpu' || this.name === 'CudaPinned' || this.memType !== 'default';
  }

  protected destroy(pointer: bigint): void {
    if (this.owned) ortLibrary().fn.ReleaseMemoryInfo(pointer);
  }
}

let cpu: MemoryInfo | undefined;

/** One CPU memory info for the process's values over JavaScript memory (kept for the process's life). */
export function cpuMemoryInfo(): MemoryInfo {
  if (!cpu || cpu.released) cpu = MemoryInfo.cpu();
  return cpu;
}
