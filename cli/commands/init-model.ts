import { writeRandomCheckpoint, type PresetName } from '../../sidecar/weights/random-checkpoint.ts';
import { withProgress } from '../progress.ts';

/** `init-model --out DIR [--preset tiny|small] [--seed N] [--shards N]`: a random-weight checkpoint in the HF layout. */
export async function initModelCommand(opts: { out: string; preset: string; seed: number; shards?: number }): Promise<void> {
  if (opts.preset !== 'tiny' && opts.preset !== 'small') throw new Error(`--preset must be tiny or small, got ${opts.preset}`);
  const written = await withProgress(`writing the ${opts.preset} model`, async () =>
    writeRandomCheckpoint({ out: opts.out, preset: opts.preset as PresetName, seed: opts.seed, shards: opts.shards }),
  );
  process.stdout.write(`${written.dir}\n`);
}
