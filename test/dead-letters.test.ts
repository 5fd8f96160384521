import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsJobQueue } from '../contract/job-queue.ts';
import { newPrediction } from '../contract/prediction.ts';
import { createSqsClient } from '../contract/sqs.ts';
import { failDeadLettered } from '../functions/dead-letters.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * A job whose message is dead-lettered (issue 18, item 4, on AWS): every delivery ended without the
 * message being deleted, SQS moved it to the dead-letter queue, and its prediction is failed from
 * there with an error that says so; a prediction that ended anyway stays as it ended.
 */
let h: ApiHarness;
beforeAll(async () => {
  h = await startApiHarness();
}, 60_000);
afterAll(async () => h?.stop());

describe('dead-lettered jobs', () => {
  it('fail their prediction with a clear error', async () => {
    const stuck = newPrediction({ id: 'deadletter1', owner: 'local', input: {} });
    const ended = newPrediction({ id: 'deadletter2', owner: 'local', input: {}, status: 'canceled', completed_at: new Date().toISOString() });
    await h.predictions.create(stuck);
    await h.predictions.create(ended);
    for (const p of [stuck, ended]) await h.queue.send({ predictionId: p.id, jobKey: p.job });

    // workers that take the message and die: it comes back until the queue gives up on it (maxReceiveCount 5)
    const dlq = new SqsJobQueue(createSqsClient({ ...h.stack.queue, queueUrl: h.stack.dlqUrl }), h.stack.dlqUrl);
    let dead: Awaited<ReturnType<SqsJobQueue['receive']>> = [];
    const until = Date.now() + 30_000;
    while (dead.length < 2 && Date.now() < until) {
      await h.queue.receive(10, 0, { visibilitySeconds: 0 });
      dead = [...dead, ...(await dlq.receive(10, 0))];
    }
    expect(dead.map((m) => m.job!.predictionId).sort()).toEqual(['deadletter1', 'deadletter2']);

    const out = await failDeadLettered(h.predictions, dead.map((m) => ({ body: JSON.stringify(m.job), receiveCount: 5 })));
    expect(out).toEqual({ failed: ['deadletter1'], skipped: 1 });
    const now = (await h.predictions.get('deadletter1'))!.value;
    expect(now.status).toBe('failed');
    expect(now.error).toMatch(/dead-lettered after 5 deliveries/);
    expect((await h.predictions.get('deadletter2'))!.value.status).toBe('canceled');
    dlq.sqs.destroy();
  }, 60_000);
});
