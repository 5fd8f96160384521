import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createS3Client, s3SettingsFromEnv } from '../../contract/s3.ts';
import { isS3Uri, parseS3Uri, type S3Location } from '../../contract/s3-uri.ts';
import { resolveModelLocation } from '../../sidecar/bundle/model-location.ts';
import { assertNoBundleAt, uploadBundle } from '../../sidecar/bundle/s3-upload.ts';
import { writeBundle } from '../../sidecar/bundle/write-bundle.ts';
import { checkActivations, refuseCudaFp32, TARGETS, WEIGHT_DTYPES, type Precision, type Target, type WeightDtype } from '../../sidecar/graphs/precision.ts';
import { checkConvertFits } from './convert-memory.ts';
import { fileProgress, withProgress } from '../progress.ts';

/**
 * `convert --from HF_DIR|REPO_ID|s3://… --out BUNDLE|s3://bucket/prefix/ [--dtype fp32|fp16|bf16|int8|int4] [--target cpu|cuda] [--activations fp16|bf16]`:
 * a model bundle (sidecar/bundle/write-bundle.ts) that the sidecar and every command load in
 * place of the Hugging Face directory. A Hub repo id or an S3 location is downloaded first
 * (model-location.ts). An S3 --out is written to a temporary directory, then uploaded with the
 * manifest last (s3-upload.ts). Prints the bundle directory or URI.
 */
export async function convertCommand(opts: { from: string; out: string; dtype: string; target: string; activations?: string; blockSize?: number; accuracyLevel?: number; gpuMemory?: number; hostMemory?: number }): Promise<void> {
  if (!WEIGHT_DTYPES.includes(opts.dtype as WeightDtype)) throw new Error(`--dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got ${opts.dtype}`);
  if (!TARGETS.includes(opts.target as Target)) throw new Error(`--target must be one of ${TARGETS.join(', ')}, got ${opts.target}`);
  const precision: Precision = { dtype: opts.dtype as WeightDtype, target: opts.target as Target, ...(opts.activations ? { activations: opts.activations as Precision['activations'] } : {}) };
  refuseCudaFp32(precision, 'anole convert'); // before any download
  checkActivations(precision, 'anole convert');
  const to = isS3Uri(opts.out) ? parseS3Uri(opts.out, '--out') : undefined;
  const s3 = to ? createS3Client(s3SettingsFromEnv()) : undefined;
  try {
    if (s3 && to) await assertNoBundleAt(s3, to); // before the long part, not after it
    const progress = fileProgress('downloading');
    const from = await resolveModelLocation(opts.from, progress.onProgress).finally(progress.stop);
    checkConvertFits(from, precision, opts); // refuses a bundle whose memory at batch 1 exceeds the machine it is for
    const convert = (out: string) =>
      withProgress(`converting to ${precision.dtype} for ${precision.target}`, () =>
        writeBundle({ from, out, precision, blockSize: opts.blockSize, accuracyLevel: opts.accuracyLevel }),
      );
    if (s3 && to) await convertToS3(convert, s3, to);
    else await convert(opts.out);
  } finally {
    s3?.destroy();
  }
  process.stdout.write(`${opts.out}\n`);
}

async function convertToS3(convert: (out: string) => Promise<unknown>, s3: ReturnType<typeof createS3Client>, to: S3Location): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-convert-'));
  try {
    const dir = path.join(tmp, 'bundle');
    await convert(dir);
    const progress = fileProgress('uploading');
    await uploadBundle({ s3, dir, to, onProgress: progress.onProgress }).finally(progress.stop);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
