import { parseQueuedJob } from '../contract/job-queue.ts';
import { TERMINAL } from '../contract/prediction.ts';
import { PredictionNotFoundError, PredictionStore } from '../contract/prediction-store.ts';
import { createS3Client, s3SettingsFromEnv } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';

/**
 * The job queue's dead-letter queue, drained: a message lands there when no worker could finish (or
 * even fail) its job in maxReceiveCount deliveries, and nothing would ever end its prediction. Each
 * such prediction is failed here with an error that says so; one already ended is left as it is.
 * On AWS this is a Lambda with the dead-letter queue as its event source (SQS records in, the
 * store's settings from the environment as for the API).
 */
export interface DeadLetter {
  body: string;
  /** Deliveries the message had before it was dead-lettered, when known. */
  receiveCount?: number;
}

export async function failDeadLettered(predictions: Pick<PredictionStore, 'update'>, letters: DeadLetter[], now = Date.now()): Promise<{ failed: string[]; skipped: number }> {
  const failed: string[] = [];
  let skipped = 0;
  for (const letter of letters) {
    const job = parseQueuedJob(letter.body);
    if (!job) {
      skipped++; // not a job: nothing to end
      continue;
    }
    const deliveries = letter.receiveCount ? ` after ${letter.receiveCount} deliveries` : '';
    const error = `the job could not be run: its message was dead-lettered${deliveries} (every worker that took it stopped or failed before it could record an end)`;
    try {
      const { value } = await predictions.update(job.predictionId, (r) => (TERMINAL.has(r.status) ? null : { ...r, status: 'failed', error, completed_at: new Date(now).toISOString() }));
      if (value.error === error) failed.push(job.predictionId);
      else skipped++;
    } catch (e) {
      if (!(e instanceof PredictionNotFoundError)) throw e; // a storage error: the Lambda retries the batch
      skipped++;
    }
  }
  return { failed, skipped };
}

let store: PredictionStore | undefined;

/** The Lambda entry for the dead-letter queue's event source. */
export async function handler(event: { Records: { body: string; attributes?: { ApproximateReceiveCount?: string } }[] }): Promise<{ failed: string[]; skipped: number }> {
  if (!store) {
    const s3 = s3SettingsFromEnv(process.env);
    store = new PredictionStore(new S3BlobStore(createS3Client(s3), s3.bucket));
  }
  return failDeadLettered(
    store,
    event.Records.map((r) => ({ body: r.body, receiveCount: r.attributes?.ApproximateReceiveCount ? Number(r.attributes.ApproximateReceiveCount) : undefined })),
  );
}
