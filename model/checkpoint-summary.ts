import type { AnoleConfig } from './config.ts';

/** Anole-7B's shape (GAIR/Anole-7b-v0.1, leloy/Anole-7b-v0.1-hf), the only Anole weights released. */
const ANOLE_7B = { layers: 32, hiddenSize: 4096, imageSize: 512 };

export interface CheckpointSummary {
  layers: number;
  hiddenSize: number;
  /** Pixels on a side of the pictures it makes (the VQ-VAE's resolution). */
  imageSize: number;
  /**
   * Not Anole-7B's shape: then it can only be a model made here with random weights (`anole
   * init-model`, the default model when none is given, the test fixtures), whose pictures are noise.
   */
  randomShape: boolean;
}

/** What a checkpoint's config says about it, for the people looking at its output. */
export function summarizeCheckpoint(config: Pick<AnoleConfig, 'numHiddenLayers' | 'hiddenSize' | 'vq'>): CheckpointSummary {
  const summary = { layers: config.numHiddenLayers, hiddenSize: config.hiddenSize, imageSize: config.vq.resolution };
  const randomShape = summary.layers !== ANOLE_7B.layers || summary.hiddenSize !== ANOLE_7B.hiddenSize || summary.imageSize !== ANOLE_7B.imageSize;
  return { ...summary, randomShape };
}
