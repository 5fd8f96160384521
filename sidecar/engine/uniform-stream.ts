import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat32 } from 'pure-rand/distribution/uniformFloat32';
import type { JumpableRandomGenerator } from 'pure-rand/types/JumpableRandomGenerator';

/**
 * The random numbers of one sampled sequence: the n-th token always uses the n-th uniform of
 * its own seeded stream, whatever the chunk size, the batch it shares or the machine. A chunk
 * that ends early (EOS, boi) hands back the uniforms it did not use.
 */
export class UniformStream {
  private readonly rng: JumpableRandomGenerator;
  private readonly pending: number[] = [];

  constructor(seed: number) {
    this.rng = xoroshiro128plus(seed | 0);
    // Nearby seeds start with correlated outputs (seed 0..3 all begin near 1.0): jump away first.
    this.rng.jump();
  }

  /** The next `n` uniforms in [0, 1), multiples of 2^-24 (exact in float32), without consuming them. */
  peek(n: number): number[] {
    while (this.pending.length < n) this.pending.push(uniformFloat32(this.rng));
    return this.pending.slice(0, n);
  }

  /** Marks the first `n` peeked uniforms as used. */
  consume(n: number): void {
    this.peek(n);
    this.pending.splice(0, n);
  }
}
