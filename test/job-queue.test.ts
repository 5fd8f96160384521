import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsJobQueue } from '../contract/job-queue.ts';
import { createSqsClient } from '../contract/sqs.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';

/**
 * SqsJobQueue against local-aws-sqs on loopback (the SQS JSON protocol, as client-sqs v3 speaks
 * it): claim-check messages, visibility while a job runs, redelivery with a growing receive count,
 * and the dead-letter queue after maxReceiveCount deliveries.
 */
let stack: LocalStack;
let sqs: SQSClient;
let queue: SqsJobQueue;

beforeAll(async () => {
  stack = await startLocalStack({ visibilityTimeoutSeconds: 30, maxReceiveCount: 2, queueName: 'queue-test' });
  sqs = createSqsClient(stack.queue);
  queue = new SqsJobQueue(sqs, stack.queue.queueUrl);
});
afterAll(async () => {
  sqs?.destroy();
  await stack?.stop();
});

async function drainAll(): Promise<void> {
  for (let got = await queue.receive(10, 0); got.length > 0; got = await queue.receive(10, 0)) await Promise.all(got.map((m) => queue.delete(m.receiptHandle)));
}

describe('SqsJobQueue', () => {
  it('carries a QueuedJob with its delivery details', async () => {
    const before = Date.now();
    const id = await queue.send({ predictionId: 'p1', jobKey: 'jobs/p1.json' });
    const [m, ...rest] = await queue.receive(1, 1);
    expect(rest).toEqual([]);
    expect(m.messageId).toBe(id);
    expect(m.job).toEqual({ predictionId: 'p1', jobKey: 'jobs/p1.json' });
    expect(m.receiveCount).toBe(1);
    expect(m.sentAt).toBeGreaterThanOrEqual(before - 1000);
    expect(m.sentAt).toBeLessThanOrEqual(Date.now() + 1000);
    // in flight: hidden from other receivers until deleted or timed out
    expect(await queue.receive(10, 0)).toEqual([]);
    await queue.delete(m.receiptHandle);
  });

  // No sleeps raced against visibility timeouts: every wait below is a long poll of the queue, whose end
  // the server schedules after the message's own timer (in this process), so which comes first is
  // fixed by their order, not by how fast this machine happens to be.
  it('gives back a message not deleted in time, counting deliveries but not heartbeats', async () => {
    await drainAll();
    await queue.send({ predictionId: 'p2', jobKey: 'jobs/p2.json' });
    const [first] = await queue.receive(1, 1, { visibilitySeconds: 1 });
    expect(first.receiveCount).toBe(1);
    // heartbeats (more than maxReceiveCount of them, which must not count as receives) hide it for a minute:
    // a 2 s long poll, past the 1 s it was received for, finds nothing
    for (let beat = 0; beat < 3; beat++) await queue.extendVisibility(first.receiptHandle, 60);
    expect(await queue.receive(1, 2)).toEqual([]);
    // the last heartbeat leaves it 1 s: not deleted by then, it comes back to a poll that waits longer
    await queue.extendVisibility(first.receiptHandle, 1);
    const [second] = await queue.receive(1, 3, { visibilitySeconds: 1 });
    expect(second.job?.predictionId).toBe('p2');
    expect(second.receiveCount).toBe(2);
    await queue.delete(second.receiptHandle);
  });

  it('moves a message delivered maxReceiveCount times to the dead-letter queue', async () => {
    await drainAll();
    await queue.send({ predictionId: 'p3', jobKey: 'jobs/p3.json' });
    for (let delivery = 1; delivery <= 2; delivery++) {
      const [m] = await queue.receive(1, 2, { visibilitySeconds: 1 });
      expect(m.receiveCount).toBe(delivery);
    }
    // its second visibility second ends within this poll: it goes to the dead-letter queue, not back
    expect(await queue.receive(1, 2)).toEqual([]);
    const dead = await sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.dlqUrl, WaitTimeSeconds: 1 }));
    expect(dead.Messages?.map((m) => JSON.parse(m.Body!))).toEqual([{ predictionId: 'p3', jobKey: 'jobs/p3.json' }]);
  });

  it('returns a malformed body as job null, and receives up to max at once', async () => {
    await drainAll();
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.queue.queueUrl, MessageBody: 'not json' }));
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.queue.queueUrl, MessageBody: JSON.stringify({ predictionId: 7 }) }));
    for (let i = 0; i < 3; i++) await queue.send({ predictionId: `b${i}`, jobKey: `jobs/b${i}.json` });
    const got = [];
    for (let tries = 0; got.length < 5 && tries < 10; tries++) got.push(...(await queue.receive(10 - got.length, 1)));
    expect(got.filter((m) => m.job === null)).toHaveLength(2);
    expect(got.flatMap((m) => (m.job ? [m.job.predictionId] : [])).sort()).toEqual(['b0', 'b1', 'b2']);
    await Promise.all(got.map((m) => queue.delete(m.receiptHandle)));
    const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: stack.queue.queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
    expect(Number(attrs.Attributes!.ApproximateNumberOfMessages) + Number(attrs.Attributes!.ApproximateNumberOfMessagesNotVisible)).toBe(0);
  });
});
