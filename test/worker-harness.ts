import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { SqsJobQueue } from '../contract/job-queue.ts';
import { newPrediction, type PredictionRecord } from '../contract/prediction.ts';
import { PredictionStore } from '../contract/prediction-store.ts';
import { createS3Client } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import { createSqsClient } from '../contract/sqs.ts';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '../dev/local-stack.ts';
import { prepareJob, type PredictionInput } from '../functions/prepare-job.ts';
import { AnoleProcessor } from '../model/preprocess/processor.ts';
import { parseAnoleConfig, type AnoleConfig } from '../model/config.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';
import type { JobWorker } from '../sidecar/worker/job-worker.ts';

/**
 * What the worker tests share: the local stack (s3rver behind the conditional-write front,
 * local-aws-sqs), a tiny random model, and `submit`, which does what the API does for a
 * prediction: prepare the job, store it, create the record (starting), enqueue the claim check.
 */
export interface Harness {
  stack: LocalStack;
  modelDir: string;
  config: AnoleConfig;
  blobs: S3BlobStore;
  predictions: PredictionStore;
  queue: SqsJobQueue;
  sqs: SQSClient;
  submit(input: PredictionInput, record?: Partial<PredictionRecord>): Promise<string>;
  /** Polls the record until `done` holds (or throws after timeoutMs). */
  waitFor(id: string, done: (r: PredictionRecord) => boolean, timeoutMs?: number): Promise<PredictionRecord>;
  /** Messages in the job queue (visible + in flight) and in the dead-letter queue. */
  queueDepth(): Promise<{ queued: number; dead: number }>;
  close(): Promise<void>;
}

export async function startHarness(stackOptions: LocalStackOptions = {}): Promise<Harness> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-worker-test-'));
  const modelDir = path.join(tmp, 'model');
  writeRandomCheckpoint({ out: modelDir, preset: 'tiny', seed: 7 });
  const config = parseAnoleConfig(JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8')));
  const processor = await AnoleProcessor.load(modelDir);
  const stack = await startLocalStack(stackOptions);
  const blobs = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
  const predictions = new PredictionStore(blobs);
  const sqs = createSqsClient(stack.queue);
  const queue = new SqsJobQueue(sqs, stack.queue.queueUrl);

  const count = async (url: string) => {
    const a = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'] }))).Attributes ?? {};
    return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) + Number(a.ApproximateNumberOfMessagesDelayed ?? 0);
  };

  return {
    stack,
    modelDir,
    config,
    blobs,
    predictions,
    queue,
    sqs,
    async submit(input, record = {}) {
      const id = randomUUID();
      const job = await prepareJob(input, { id, config, processor, store: blobs });
      const jobKey = `jobs/${id}.json`;
      await blobs.put(jobKey, JSON.stringify(job), 'application/json');
      await predictions.create(newPrediction({ id, owner: 'test', input: { prompt: input.prompt, mode: input.mode ?? 'text' }, job: jobKey, ...record }));
      await queue.send({ predictionId: id, jobKey });
      return id;
    },
    async waitFor(id, done, timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const r = (await predictions.get(id))?.value;
        if (r && done(r)) return r;
        if (Date.now() > until) throw new Error(`prediction ${id} still ${r?.status} after ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 50));
      }
    },
    async queueDepth() {
      return { queued: await count(stack.queue.queueUrl), dead: await count(stack.dlqUrl) };
    },
    async close() {
      sqs.destroy();
      blobs.s3.destroy();
      await stack.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** A text job that runs for a while on the tiny model (~14 ms a token here): end-of-sequence is forbidden. */
export function longTextInput(config: AnoleConfig, tokens: number): PredictionInput {
  return { prompt: 'tell a long story', mode: 'text', maxNewTokens: tokens, sampling: { seed: 3 }, logitBias: { [config.eosTokenId]: -100 } };
}

/** Runs `body` with a worker running on `worker`'s queue, then drains it (and waits for its loop to end). */
export async function whileRunning<T>(worker: JobWorker, body: (w: JobWorker) => Promise<T>): Promise<T> {
  const loop = worker.run();
  try {
    return await body(worker);
  } finally {
    await worker.drain();
    await loop;
  }
}
