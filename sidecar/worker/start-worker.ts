import { SqsJobQueue } from '../../contract/job-queue.ts';
import { createS3Client } from '../../contract/s3.ts';
import { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { createSqsClient } from '../../contract/sqs.ts';
import { startHealthServer, type HealthServer } from './health-server.ts';
import { startMetricsLog } from './metrics-log.ts';
import { JobWorker } from './job-worker.ts';
import { loadModel, releaseModel, type LoadedModel } from './load-model.ts';
import { generateWebhookSecret, WebhookSender } from './webhooks.ts';
import type { WorkerConfig } from './worker-config.ts';

export { workerConfigFromEnv, type WorkerConfig } from './worker-config.ts';

export interface StartedWorker {
  worker: JobWorker;
  health: HealthServer;
  webhookSecret: string;
  /** Drains (the batch in hand finishes, nothing new is taken), then closes the servers and the model. */
  stop(): Promise<void>;
}

/**
 * Loads the model once (or takes the load `model` already started: the worker's process starts it
 * before importing this module), connects S3 and the queue, starts the loop and the health server.
 * A failure releases whatever was started, so the process can exit.
 */
export async function startWorker(config: WorkerConfig, model?: Promise<LoadedModel>): Promise<StartedWorker> {
  const loading = model ?? loadModel(config.modelDir, { intraOpNumThreads: config.intraOpNumThreads, ...config.cache });
  const blobs = new S3BlobStore(createS3Client(config.s3), config.s3.bucket);
  const sqs = createSqsClient(config.queue);
  const webhookSecret = config.webhookSecret ?? generateWebhookSecret();
  let loadedModel: LoadedModel | undefined;
  let worker: JobWorker;
  let health: HealthServer;
  try {
    loadedModel = await loading;
    worker = new JobWorker(
      {
        model: loadedModel,
        store: blobs,
        queue: new SqsJobQueue(sqs, config.queue.queueUrl),
        webhooks: new WebhookSender({ secret: webhookSecret, log: config.worker?.log, ...config.webhook }),
        present: config.present,
      },
      config.worker,
    );
    health = await startHealthServer(worker, config.health);
  } catch (e) {
    if (loadedModel) await releaseModel(loadedModel);
    sqs.destroy();
    blobs.s3.destroy();
    throw e;
  }
  const loaded = loadedModel;
  const loop = worker.run();
  const stopMetricsLog = config.metricsLogSeconds ? startMetricsLog(worker, config.metricsLogSeconds) : () => {};
  let stopping: Promise<void> | undefined;
  return {
    worker,
    health,
    webhookSecret,
    stop: () =>
      (stopping ??= (async () => {
        await worker.drain();
        await loop;
        stopMetricsLog();
        await health.close();
        await releaseModel(loaded);
        sqs.destroy();
        blobs.s3.destroy();
      })()),
  };
}
