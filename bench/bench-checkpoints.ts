import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnoleConfig } from '../model/config.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { RANDOM_CHECKPOINT_PRESETS, writeRandomCheckpoint, type PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { validateCheckpoint } from '../sidecar/weights/validate-checkpoint.ts';

/**
 * The random checkpoints the bench runs on, written once into .cache/bench/<preset> and reused:
 * the small preset takes seconds to write, and the same seed gives the same bytes, so a cached
 * one measures exactly what a fresh one would.
 */
export const BENCH_CACHE_DIR = fileURLToPath(new URL('../.cache/bench/', import.meta.url));
const SEED = 0;

export function benchCheckpoint(preset: PresetName): { dir: string; written: boolean } {
  const dir = path.join(BENCH_CACHE_DIR, preset);
  if (isCurrent(dir, preset)) return { dir, written: false };
  // absent, half-written or made from an older preset definition: write it anew
  fs.rmSync(dir, { recursive: true, force: true });
  writeRandomCheckpoint({ out: dir, preset, seed: SEED });
  return { dir, written: true };
}

/** Bytes of every file in the checkpoint directory (weights, config, tokenizer). */
export function sizeOnDisk(dir: string): number {
  return fs.readdirSync(dir, { withFileTypes: true }).reduce((sum, entry) => {
    const file = path.join(dir, entry.name);
    return sum + (entry.isDirectory() ? sizeOnDisk(file) : fs.statSync(file).size);
  }, 0);
}

function isCurrent(dir: string, preset: PresetName): boolean {
  try {
    const ckpt = openCheckpoint(dir);
    validateCheckpoint(ckpt);
    return matchesPreset(ckpt.config!, preset);
  } catch {
    return false;
  }
}

function matchesPreset(config: AnoleConfig, preset: PresetName): boolean {
  const shape = RANDOM_CHECKPOINT_PRESETS[preset];
  const { vq } = config;
  return (
    config.vocabSize === shape.vocabSize &&
    config.hiddenSize === shape.hiddenSize &&
    config.intermediateSize === shape.intermediateSize &&
    config.numHiddenLayers === shape.numHiddenLayers &&
    config.numAttentionHeads === shape.numAttentionHeads &&
    config.numKeyValueHeads === shape.numKeyValueHeads &&
    vq.resolution === shape.vq.resolution &&
    vq.baseChannels === shape.vq.baseChannels &&
    vq.channelMultiplier.join() === shape.vq.channelMultiplier.join() &&
    vq.numResBlocks === shape.vq.numResBlocks &&
    vq.latentChannels === shape.vq.latentChannels &&
    vq.embedDim === shape.vq.embedDim &&
    vq.numEmbeddings === shape.vq.numEmbeddings
  );
}
