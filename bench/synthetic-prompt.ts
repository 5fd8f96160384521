import { compileConstraints } from '../model/constraints.ts';
import type { AnoleConfig } from '../model/config.ts';

/**
 * A prompt of `length` ids: BOS, then ordinary text ids (no image, boi/eoi, eos, pad or <image>
 * ids) taken through the text range with a prime stride. A random-weight model reads every id
 * alike, so for timing only the length matters; the ids are fixed so runs are comparable.
 */
export function syntheticPrompt(config: AnoleConfig, length: number): number[] {
  if (!(Number.isInteger(length) && length >= 1)) throw new RangeError(`prompt length must be a positive integer, got ${length}`);
  const special = new Set([config.bosTokenId, config.eosTokenId, config.padTokenId, config.imageTokenId]);
  const text: number[] = [];
  for (const { from, to } of compileConstraints(config, 'text').text) for (let id = from; id < to; id++) if (!special.has(id)) text.push(id);
  return [config.bosTokenId, ...Array.from({ length: length - 1 }, (_, i) => text[(i * 7919) % text.length])];
}
