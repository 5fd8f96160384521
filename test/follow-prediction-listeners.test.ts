import { getEventListeners } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newPrediction } from '../contract/prediction.ts';
import { PredictionStore } from '../contract/prediction-store.ts';
import { createS3Client } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { waitForTerminal } from '../functions/api/follow-prediction.ts';

/**
 * Issue 19, item 6: a long `Prefer: wait` polls the store many times on one abort signal; each
 * poll's listener must go with it, or the signal collects them and Node prints
 * MaxListenersExceededWarning (as `npm start` did under a dozen waits). Real store on local S3.
 */
let stack: LocalStack;
let blobs: S3BlobStore;

beforeAll(async () => {
  stack = await startLocalStack();
  blobs = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
});
afterAll(async () => {
  blobs?.s3.destroy();
  await stack?.stop();
});

describe('waitForTerminal', () => {
  it('leaves no abort listener behind after many polls, and Node warns of none', async () => {
    const store = new PredictionStore(blobs);
    const record = newPrediction({ id: `wait-${Date.now()}`, owner: 'alice', input: { prompt: 'hi' } });
    await store.create(record);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const signal = new AbortController().signal;
      let polls = 0;
      const counting = { get: (id: string) => (polls++, store.get(id)), readEvents: store.readEvents.bind(store) };
      const result = await waitForTerminal(counting, record.id, { timeoutMs: 1500, pollMs: 20, signal });
      expect(result.status).toBe('starting'); // never terminal: the wait ran to its timeout
      expect(polls).toBeGreaterThan(11); // more polls than Node's default limit of 10 listeners
      expect(getEventListeners(signal, 'abort')).toHaveLength(0);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
