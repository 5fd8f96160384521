import koffi from 'koffi';
import { Handle } from './handle.ts';
import { ortLibrary } from './library.ts';
import type { MemoryInfo } from './memory.ts';
import { call, callOut } from './status.ts';

/** What an allocator made by a session needs from it (see Session). */
export interface AllocatorOwner {
  readonly pointer: bigint;
  addDependant(what: object): void;
  removeDependant(what: object): void;
}

/**
 * An OrtAllocator: ORT's default CPU allocator (ORT owns it: release() does nothing), or a session's
 * allocator for a memory info (CreateAllocator: device memory on CUDA; ReleaseAllocator).
 */
export class Allocator extends Handle {
  static default(): Allocator {
    return new Allocator(callOut('GetAllocatorWithDefaultOptions'), undefined);
  }

  /** The session's allocator for `memory`; the session refuses release() while it lives. */
  static forSession(session: AllocatorOwner, memory: MemoryInfo): Allocator {
    const allocator = new Allocator(callOut('CreateAllocator', session.pointer, memory.pointer), session);
    session.addDependant(allocator);
    return allocator;
  }

  private constructor(
    pointer: bigint,
    private readonly session: AllocatorOwner | undefined,
  ) {
    super(pointer, 'Allocator');
  }

  /** Returns memory this allocator handed out (AllocatorFree). */
  free(pointer: bigint): void {
    call('AllocatorFree', this.pointer, pointer);
  }

  /** Reads a C string this allocator handed out, then frees it. */
  takeString(pointer: bigint): string {
    try {
      return koffi.decode(pointer, 'char', -1) as string;
    } finally {
      this.free(pointer);
    }
  }

  protected destroy(pointer: bigint): void {
    if (!this.session) return;
    ortLibrary().fn.ReleaseAllocator(pointer);
    this.session.removeDependant(this);
  }
}
