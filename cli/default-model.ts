import fs from 'node:fs';
import path from 'node:path';
import { resolveModelLocation } from '../sidecar/bundle/model-location.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';
import { fileProgress, withProgress } from './progress.ts';

/** Where the embedded default model lives: a random-weight tiny checkpoint made on first use. */
export const DEFAULT_MODEL_DIR = path.resolve('.cache/models/tiny');

/**
 * The model directory a command should use: --model, else $ANOLE_MODEL (a directory, a bundle, an
 * s3:// location or a Hub repo id), else the embedded tiny
 * preset (written once, deterministic), so every command runs on a fresh machine with no download.
 */
export async function resolveModelDir(option: string | undefined): Promise<string> {
  const chosen = option ?? process.env.ANOLE_MODEL;
  if (chosen) {
    // an S3 location or a Hub repo id is downloaded (once) first
    const bars = fileProgress('downloading');
    return resolveModelLocation(chosen, bars.onProgress).finally(bars.stop);
  }
  if (!fs.existsSync(path.join(DEFAULT_MODEL_DIR, 'config.json'))) {
    await withProgress('creating the tiny random model', async () =>
      writeRandomCheckpoint({ out: DEFAULT_MODEL_DIR, preset: 'tiny', seed: 0 }),
    );
  }
  return DEFAULT_MODEL_DIR;
}
