import type { createRequestHandler } from 'local-aws-sqs';

type SqsService = ReturnType<typeof createRequestHandler>['service'];
type Queue = SqsService['Queues'][number];
interface StoredMessage {
  record: { MessageId: string; ReceiptHandle: string; attributes: { ApproximateReceiveCount: string } };
}

/**
 * local-aws-sqs 2.0.2 counts a ChangeMessageVisibility as a receive: ChangeMessageVisibility goes
 * through the same routine as ReceiveMessage, which adds 1 to ApproximateReceiveCount. A worker
 * whose heartbeat extends a long job's message would push it past maxReceiveCount, and the first
 * time it came back (a crashed worker) it would go to the dead-letter queue instead of being
 * retried. On AWS, only receives count. This puts the count back after each visibility change:
 * it wraps the queue's own newRecord (to keep a handle on each stored message) and changeVisibility.
 */
export function fixVisibilityReceiveCount(queue: Queue): void {
  const stored = new Map<string, StoredMessage>();
  const newRecord = queue.newRecord;
  queue.newRecord = (msg, delay) => {
    const m = newRecord(msg, delay) as StoredMessage;
    stored.set(m.record.MessageId, m);
    return m;
  };
  const changeVisibility = queue.changeVisibility.bind(queue);
  queue.changeVisibility = (receiptHandle, timeout) => {
    const m = [...stored.values()].find((s) => s.record.ReceiptHandle === receiptHandle);
    const count = m?.record.attributes.ApproximateReceiveCount;
    const changed = changeVisibility(receiptHandle, timeout);
    if (m && count !== undefined) m.record.attributes.ApproximateReceiveCount = count;
    return changed;
  };
  const remove = queue.delete.bind(queue);
  queue.delete = (receiptHandle) => {
    for (const [id, s] of stored) if (s.record.ReceiptHandle === receiptHandle) stored.delete(id);
    return remove(receiptHandle);
  };
}
