import type { AnoleConfig } from './config.ts';
import { imageVocabulary } from './vocabulary.ts';

/**
 * The generation modes as a tiny state machine, compiled once per request into token sets.
 * The engine never scans the sequence: a row is either in text (may choose from `text`, and boi
 * when an image still fits) or inside an image (image tokens until image_seq_length, then eoi).
 *
 *   text ──boi──▶ image(0) ──image×N──▶ image(N) ──eoi──▶ text   (interleaved)
 *   image mode: the prompt ends with boi; eoi ends the sequence.
 *   text mode:  boi, eoi and every image token are suppressed (HF's text-only processors).
 */
export type GenerationMode = 'text' | 'image' | 'interleaved';

/** Half-open id ranges [from, to): compact enough to travel in a job message. */
export interface IdRange {
  from: number;
  to: number;
}

export interface TokenConstraints {
  mode: GenerationMode;
  vocabSize: number;
  /** Tokens a row may produce in the text state (boi excluded; see allowBoi). */
  text: IdRange[];
  /** The image tokens. */
  image: IdRange[];
  /** Text may open an image (interleaved), when the remaining budget holds boi + N + eoi. */
  allowBoi: boolean;
  /** Image mode: the prompt ends with boi, so generation starts inside an image. */
  startInImage: boolean;
  /** Image mode: the sequence ends at eoi. */
  stopAfterImage: boolean;
  imageSeqLength: number;
  boi: number;
  eoi: number;
  eos: number;
  pad: number;
}

// Compiling reads the whole 65536-entry vocabulary map, and a service compiles per request, so the
// result is kept per config and mode (docs/benchmarks.md, "Vocabulary tables and constraints built
// once"); each caller gets its own copy.
const compiled = new WeakMap<AnoleConfig, Map<string, TokenConstraints>>();

export function compileConstraints(config: AnoleConfig, mode: GenerationMode, suppress: readonly number[] = []): TokenConstraints {
  const key = `${mode}:${suppress.join(',')}`;
  let perConfig = compiled.get(config);
  if (!perConfig) compiled.set(config, (perConfig = new Map()));
  let constraints = perConfig.get(key);
  if (!constraints) perConfig.set(key, (constraints = compileUncached(config, mode, suppress)));
  return structuredClone(constraints);
}

function compileUncached(config: AnoleConfig, mode: GenerationMode, suppress: readonly number[]): TokenConstraints {
  const vocab = imageVocabulary(config);
  const image = rangesOf(Array.from(vocab.codeToToken));
  const excluded = new Set<number>([...vocab.codeToToken, config.boiTokenId, config.eoiTokenId, ...suppress]);
  const text: number[] = [];
  for (let id = 0; id < config.vocabSize; id++) if (!excluded.has(id)) text.push(id);
  return {
    mode,
    vocabSize: config.vocabSize,
    text: rangesOf(text),
    image,
    allowBoi: mode === 'interleaved',
    startInImage: mode === 'image',
    stopAfterImage: mode === 'image',
    imageSeqLength: config.imageSeqLength,
    boi: config.boiTokenId,
    eoi: config.eoiTokenId,
    eos: config.eosTokenId,
    pad: config.padTokenId,
  };
}

/** Sorted ids → the fewest half-open ranges. */
export function rangesOf(ids: number[]): IdRange[] {
  const sorted = [...ids].sort((a, b) => a - b);
  const ranges: IdRange[] = [];
  for (const id of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && id === last.to) last.to++;
    else if (!last || id >= last.to) ranges.push({ from: id, to: id + 1 });
  }
  return ranges;
}

/** Ranges → a 0/1 mask over the vocabulary (what the graph consumes). */
export function maskOf(ranges: IdRange[], vocabSize: number): Uint8Array {
  const mask = new Uint8Array(vocabSize);
  for (const { from, to } of ranges) mask.fill(1, from, to);
  return mask;
}
