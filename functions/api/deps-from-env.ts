import fs from 'node:fs';
import path from 'node:path';
import { SqsJobQueue } from '../../contract/job-queue.ts';
import { PredictionStore } from '../../contract/prediction-store.ts';
import { createS3Client, s3SettingsFromEnv } from '../../contract/s3.ts';
import { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { createSqsClient, queueSettingsFromEnv } from '../../contract/sqs.ts';
import { parseAnoleConfig } from '../../model/config.ts';
import { AnoleProcessor } from '../../model/preprocess/processor.ts';
import { addressPolicyFromEnv } from '../../contract/address-policy.ts';
import { apiKeysFromEnv } from './auth.ts';
import { DEFAULT_LIMITS, type ApiDeps } from './deps.ts';

/**
 * The API's dependencies from the environment, the same on Lambda and locally:
 *   ANOLE_MODEL          a checkpoint directory; only its config, tokenizer and processor files
 *                        are read (the Lambda bundle carries those, not the weights)
 *   S3 and queue         contract/s3.ts, contract/sqs.ts (ANOLE_S3_BUCKET, ANOLE_QUEUE_URL, …)
 *   ANOLE_MODEL_ID       the served model's name, owner/name (default anole/anole-7b)
 *   ANOLE_MAX_CONTEXT    tokens a prediction may use, when the workers' cache slots are shorter than the model's context
 *   ANOLE_API_KEYS       auth.ts;  ANOLE_ALLOW_HTTP_URLS, ANOLE_ALLOWED_ADDRESSES: address-policy.ts
 */
export async function apiDepsFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<ApiDeps> {
  const modelDir = env.ANOLE_MODEL;
  if (!modelDir) throw new Error('ANOLE_MODEL is not set: the directory with config.json and the tokenizer files');
  const s3 = s3SettingsFromEnv(env);
  const queue = queueSettingsFromEnv(env);
  const store = new S3BlobStore(createS3Client(s3), s3.bucket);
  return {
    config: parseAnoleConfig(JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'))),
    processor: await AnoleProcessor.load(modelDir, { limitInputPixels: DEFAULT_LIMITS.image.maxPixels }),
    store,
    predictions: new PredictionStore(store),
    queue: new SqsJobQueue(createSqsClient(queue), queue.queueUrl),
    apiKeys: apiKeysFromEnv(env),
    ...(env.ANOLE_MODEL_ID ? { modelId: env.ANOLE_MODEL_ID } : {}),
    ...(env.ANOLE_MAX_CONTEXT ? { contextLength: positiveInt('ANOLE_MAX_CONTEXT', env.ANOLE_MAX_CONTEXT) } : {}),
    addressPolicy: addressPolicyFromEnv(env),
  };
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 2) throw new Error(`${name} must be a whole number of tokens (at least 2), got ${value}`);
  return n;
}
