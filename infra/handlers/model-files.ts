import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { ENV } from '../config.ts';
import { parseS3Uri } from '../settings.ts';

/** What the API reads of a model bundle: the config and the tokenizer/processor files, never the weights. */
export const API_MODEL_FILES = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'preprocessor_config.json',
  'processor_config.json',
] as const;
const REQUIRED: readonly string[] = ['config.json', 'tokenizer.json'];

/**
 * A local directory holding API_MODEL_FILES: `model` itself when it is a directory, else a copy of
 * those files from `s3://bucket/prefix/` under `cacheDir` (once per Lambda container; the optional
 * ones are skipped when the bundle has none). So the Lambdas read the same bundle as the workers,
 * with no copy of it in their code package.
 */
export async function modelFilesDir(model: string, s3: S3Client, cacheDir = path.join(os.tmpdir(), 'anole-model')): Promise<string> {
  if (!model.startsWith('s3://')) return model;
  const { bucket, prefix } = parseS3Uri(model, ENV.model);
  const store = new S3BlobStore(s3, bucket);
  fs.mkdirSync(cacheDir, { recursive: true });
  for (const name of API_MODEL_FILES) {
    const file = path.join(cacheDir, name);
    if (fs.existsSync(file)) continue;
    const blob = await store.getWithEtag(prefix + name);
    if (!blob) {
      if (REQUIRED.includes(name)) throw new Error(`the model bundle ${model} has no ${name}`);
      continue;
    }
    // write then rename: a concurrent cold start never reads half a file
    fs.writeFileSync(`${file}.partial`, blob.body);
    fs.renameSync(`${file}.partial`, file);
  }
  return cacheDir;
}
