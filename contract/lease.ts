import type { S3BlobStore } from './s3-blob-store.ts';

/**
 * Who runs a prediction now: `predictions/{id}/lease.json` = {holder, expiresAt (ms)}, taken and
 * renewed by the worker running it (sidecar/worker/job-lease.ts). Anyone may read it to tell whether
 * a worker still holds the prediction, e.g. the API, before it ends one whose job can no longer run.
 */
export const leaseKey = (predictionId: string) => `predictions/${predictionId}/lease.json`;

export interface LeaseBody {
  holder: string;
  expiresAt: number;
}

/** True while a worker's lease on the prediction is live. */
export async function workerHolds(store: Pick<S3BlobStore, 'getWithEtag'>, predictionId: string, now = Date.now()): Promise<boolean> {
  const blob = await store.getWithEtag(leaseKey(predictionId));
  if (!blob) return false;
  try {
    return (JSON.parse(new TextDecoder().decode(blob.body)) as LeaseBody).expiresAt > now;
  } catch {
    return true; // a lease being written (unreadable) is not evidence that nobody holds it
  }
}
