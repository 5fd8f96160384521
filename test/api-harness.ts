import fs from 'node:fs';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { SqsJobQueue } from '../contract/job-queue.ts';
import { PredictionStore } from '../contract/prediction-store.ts';
import { createS3Client } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import { createSqsClient } from '../contract/sqs.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { checkUrlResolves, type AddressPolicy } from '../contract/address-policy.ts';
import { createApp } from '../functions/api/app.ts';
import type { ApiDeps } from '../functions/api/deps.ts';
import { renderPrediction } from '../functions/api/prediction-view.ts';
import { serveApi, type ServedApi } from '../contract/serve-http.ts';
import { AnoleProcessor } from '../model/preprocess/processor.ts';
import { parseAnoleConfig, type AnoleConfig } from '../model/config.ts';
import { startWorker, type StartedWorker } from '../sidecar/worker/start-worker.ts';
import type { WorkerOptions } from '../sidecar/worker/job-worker.ts';

/** The API on the real local stack (s3rver behind the conditional-write front, local-aws-sqs) and the fixture model's processor. */
export const FIXTURE_MODEL = 'test/fixtures/anole-tiny';

export interface ApiHarness {
  stack: LocalStack;
  store: S3BlobStore;
  predictions: PredictionStore;
  queue: SqsJobQueue;
  config: AnoleConfig;
  processor: AnoleProcessor;
  app: ReturnType<typeof createApp>;
  /** A new app on the same stack with other options (keys, limits, address policy). */
  makeApp(overrides?: Partial<ApiDeps>): ReturnType<typeof createApp>;
  stop(): Promise<void>;
}

export async function startApiHarness(overrides: Partial<ApiDeps> = {}): Promise<ApiHarness> {
  const stack = await startLocalStack();
  const store = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
  const sqs = createSqsClient(stack.queue);
  const queue = new SqsJobQueue(sqs, stack.queue.queueUrl);
  const predictions = new PredictionStore(store);
  const config = parseAnoleConfig(JSON.parse(fs.readFileSync(`${FIXTURE_MODEL}/config.json`, 'utf8')));
  const processor = await AnoleProcessor.load(FIXTURE_MODEL);
  const makeApp = (more: Partial<ApiDeps> = {}) =>
    createApp({ config, processor, store, predictions, queue, limits: { pollMs: 50 }, ...overrides, ...more });
  return {
    stack,
    store,
    predictions,
    queue,
    config,
    processor,
    app: makeApp(),
    makeApp,
    async stop() {
      sqs.destroy();
      store.s3.destroy();
      await stack.stop();
    },
  };
}

export interface SseEvent {
  event?: string;
  id?: string;
  data: string;
}

/** Server-sent events as a client parses them (WHATWG rules for the fields used here), until the stream ends. */
export async function* readSse(res: Response): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const e: SseEvent = { data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue; // a comment (keep-alive)
        const colon = line.indexOf(':');
        const [field, value] = colon < 0 ? [line, ''] : [line.slice(0, colon), line.slice(colon + 1).replace(/^ /, '')];
        if (field === 'event') e.event = value;
        else if (field === 'id') e.id = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length === 0) continue;
      e.data = data.join('\n');
      yield e;
    }
  }
}

export interface ServiceHarness extends ApiHarness {
  api: ServedApi;
  worker: StartedWorker;
  /** Messages in the job queue (visible, in flight or delayed) and in its dead-letter queue. */
  queueDepth(): Promise<{ queued: number; dead: number }>;
}

/**
 * The whole service on loopback: the API over real HTTP and the real worker (the fixture model on
 * ONNX Runtime), both on the local stack. `policy` says where image URLs and webhooks may point
 * (tests serve them on 127.0.0.1).
 */
export async function startServiceHarness(opts: { policy: AddressPolicy; pollMs?: number; worker?: WorkerOptions; api?: Partial<ApiDeps> }): Promise<ServiceHarness> {
  const h = await startApiHarness({ addressPolicy: opts.policy, limits: { pollMs: opts.pollMs ?? 100 }, ...opts.api });
  const api = await serveApi(h.app);
  const worker = await startWorker({
    modelDir: FIXTURE_MODEL,
    s3: h.stack.s3,
    queue: h.stack.queue,
    health: { port: 0 },
    webhook: { baseDelayMs: 20, checkUrl: async (url) => void (await checkUrlResolves(url, opts.policy)) },
    worker: { waitSeconds: 1, batchWindowMs: 20, cancelPollMs: 100, visibilitySeconds: 20, ...opts.worker },
    // webhooks carry the prediction as the API shows it
    present: (r) => renderPrediction(r, { presignGet: (k, s) => h.store.presignGet(k, s), origin: api.url, urlExpirySeconds: 600 }),
    intraOpNumThreads: 1,
  });
  const count = async (url: string) => {
    const names = ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'] as const;
    const a = (await h.queue.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: [...names] }))).Attributes ?? {};
    return names.reduce((n, k) => n + Number(a[k] ?? 0), 0);
  };
  return {
    ...h,
    api,
    worker,
    queueDepth: async () => ({ queued: await count(h.stack.queue.queueUrl), dead: await count(h.stack.dlqUrl) }),
    async stop() {
      await worker.stop();
      await api.close();
      await h.stop();
    },
  };
}
