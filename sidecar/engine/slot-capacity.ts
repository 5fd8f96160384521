import type { AnoleConfig } from '../../model/config.ts';
import { cacheHeadDim } from '../graphs/step-decoder.ts';
import { ELEMENT_TYPES, type ElementType } from '../ort-capi/index.ts';
import type { SlotCapacity } from './slot-batch.ts';

/** How much KV cache engine v2 keeps (the worker's ANOLE_KV_CACHE_MIB, ANOLE_MAX_CONTEXT, ANOLE_MAX_SLOTS). */
export interface CacheSettings {
  /** Bytes the cache may take (default 1 GiB): slots = cacheBytes / one slot's bytes, at most maxSlots. */
  cacheBytes?: number;
  /** Tokens per slot (default and at most max_position_embeddings: any request the model takes fits). */
  cacheContext?: number;
  /** At most this many slots (default 32: eight guided images and eight texts). */
  maxSlots?: number;
  /** Prompt tokens prefilled between two decode steps while others decode (scheduler.ts). */
  prefillChunk?: number;
}

export const DEFAULT_CACHE_BYTES = 1 << 30;
export const DEFAULT_MAX_SLOTS = 32;

/** One slot's K and V in every layer: layers · 2 · Hkv · context · Dc · element bytes. */
export function slotBytes(c: AnoleConfig, floatType: ElementType, context: number): number {
  return c.numHiddenLayers * 2 * c.numKeyValueHeads * context * cacheHeadDim(c.headDim) * ELEMENT_TYPES[floatType].bytes;
}

/** The slots a budget buys; fewer than a guided sequence needs (3) is refused, naming the settings. */
export function slotCapacity(c: AnoleConfig, floatType: ElementType, s: CacheSettings = {}): SlotCapacity {
  const context = Math.min(s.cacheContext ?? c.maxPositionEmbeddings, c.maxPositionEmbeddings);
  const budget = s.cacheBytes ?? DEFAULT_CACHE_BYTES;
  const perSlot = slotBytes(c, floatType, context);
  const slots = Math.min(s.maxSlots ?? DEFAULT_MAX_SLOTS, Math.floor(budget / perSlot));
  if (!(Number.isInteger(context) && context >= 2)) throw new Error(`cache context must be a whole number of tokens ≥ 2, got ${context}`);
  if (slots < 3) {
    throw new Error(`a KV cache of ${(budget / 2 ** 20).toFixed(0)} MiB holds ${slots} slot(s) of ${context} tokens (${(perSlot / 2 ** 20).toFixed(1)} MiB each); a guided image needs 3: raise ANOLE_KV_CACHE_MIB or lower ANOLE_MAX_CONTEXT`);
  }
  return { slots, context };
}
