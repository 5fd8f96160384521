import type { LeaseBody } from '../contract/lease.ts';
import { leaseKey } from '../contract/lease.ts';
import type { JobQueue } from '../contract/job-queue.ts';
import { TERMINAL, type QueuedJob } from '../contract/prediction.ts';
import type { PredictionStore } from '../contract/prediction-store.ts';
import type { S3BlobStore } from '../contract/s3-blob-store.ts';

/**
 * The local queue (local-aws-sqs) lives in memory; this makes it durable across restarts of
 * `npm start`. Every job sent also leaves a marker `queue/pending/{id}.json` in the bucket (the data
 * directory); at the next start, resumePendingJobs sends again the job of every marker whose
 * prediction has not ended, and clears the rest. Markers are cleared lazily (at start), so a run
 * leaves at most one per prediction it made.
 */
const PENDING = 'queue/pending/';
const markerKey = (id: string) => `${PENDING}${id}.json`;

export function durableQueue(inner: Pick<JobQueue, 'send'>, store: S3BlobStore): Pick<JobQueue, 'send'> {
  return {
    async send(job, opts) {
      await store.put(markerKey(job.predictionId), JSON.stringify(job), 'application/json');
      return inner.send(job, opts);
    },
  };
}

/**
 * At start, before any worker runs: requeues the jobs of predictions that have not ended (their
 * worker leases, left by the process that died, are expired: no worker of it is alive) and clears
 * the markers of the others.
 */
export async function resumePendingJobs(
  store: S3BlobStore,
  predictions: Pick<PredictionStore, 'get'>,
  queue: Pick<JobQueue, 'send'>,
  log: (message: string) => void = () => {},
): Promise<{ resumed: number; cleared: number }> {
  const { keys } = await store.list(PENDING);
  let resumed = 0;
  let cleared = 0;
  for (const key of keys) {
    // the id from the key and the job from the record: a marker the crash cut short still counts
    const id = key.slice(PENDING.length, -'.json'.length);
    try {
      const record = await predictions.get(id);
      if (!record || TERMINAL.has(record.value.status)) {
        await store.delete(key);
        cleared++;
        continue;
      }
      // expired whether or not one is there, unread: a lease the kill cut short mid-write (s3rver writes an object
      // and its metadata apart) cannot be read back, and a rewrite repairs it
      await store.put(leaseKey(id), JSON.stringify({ holder: 'none: the server restarted', expiresAt: 0 } satisfies LeaseBody), 'application/json');
      await queue.send({ predictionId: id, jobKey: record.value.job } satisfies QueuedJob);
      resumed++;
    } catch (e) {
      log(`prediction ${id}: not resumed: ${(e as Error).message}`);
    }
  }
  return { resumed, cleared };
}
