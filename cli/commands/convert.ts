import { resolveModelLocation } from '../../sidecar/bundle/model-location.ts';
import { writeBundle } from '../../sidecar/bundle/write-bundle.ts';
import { TARGETS, WEIGHT_DTYPES, type Target, type WeightDtype } from '../../sidecar/graphs/precision.ts';
import { withProgress } from '../progress.ts';

/**
 * `convert --from HF_DIR|REPO_ID --out BUNDLE [--dtype fp32|fp16|bf16|int8|int4] [--target cpu|cuda]`:
 * a model bundle (sidecar/bundle/write-bundle.ts) that the sidecar and every command load in
 * place of the Hugging Face directory. A Hub repo id is downloaded first (model-location.ts).
 * Prints the bundle directory.
 */
export async function convertCommand(opts: { from: string; out: string; dtype: string; target: string; blockSize?: number; accuracyLevel?: number }): Promise<void> {
  if (!WEIGHT_DTYPES.includes(opts.dtype as WeightDtype)) throw new Error(`--dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got ${opts.dtype}`);
  if (!TARGETS.includes(opts.target as Target)) throw new Error(`--target must be one of ${TARGETS.join(', ')}, got ${opts.target}`);
  const precision = { dtype: opts.dtype as WeightDtype, target: opts.target as Target };
  const from = await withProgress(`resolving ${opts.from}`, () => resolveModelLocation(opts.from));
  await withProgress(`converting to ${precision.dtype} for ${precision.target}`, () =>
    writeBundle({ from, out: opts.out, precision, blockSize: opts.blockSize, accuracyLevel: opts.accuracyLevel }),
  );
  process.stdout.write(`${opts.out}\n`);
}
