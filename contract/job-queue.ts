import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { QueuedJob } from './prediction.ts';

/** One delivery of a message: the same job may arrive again (at-least-once), with a higher receiveCount. */
export interface ReceivedJob {
  /** The message body as a QueuedJob, or null when it is not one (delete it: it can never run). */
  job: QueuedJob | null;
  messageId: string;
  /** This delivery's handle: extendVisibility and delete need it. */
  receiptHandle: string;
  /** 1 on the first delivery. */
  receiveCount: number;
  /** When it was sent (ms since the epoch), for queue-wait metrics. */
  sentAt: number;
}

/** The work queue between the API and the workers: SQS in AWS and locally (local-aws-sqs). */
export interface JobQueue {
  send(job: QueuedJob, opts?: { delaySeconds?: number }): Promise<string>;
  /** Up to `max` messages, waiting up to `waitSeconds` for the first (long polling); each is hidden for the visibility timeout. */
  receive(max: number, waitSeconds: number, opts?: { visibilitySeconds?: number; signal?: AbortSignal }): Promise<ReceivedJob[]>;
  /** Hides the message `seconds` more from now: the heartbeat of a job still running. */
  extendVisibility(receiptHandle: string, seconds: number): Promise<void>;
  /** The job is done with (succeeded, failed or no longer runnable): it will not be delivered again. */
  delete(receiptHandle: string): Promise<void>;
}

export class SqsJobQueue implements JobQueue {
  constructor(
    readonly sqs: SQSClient,
    readonly queueUrl: string,
  ) {}

  async send(job: QueuedJob, opts: { delaySeconds?: number } = {}): Promise<string> {
    const out = await this.sqs.send(new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: JSON.stringify(job), DelaySeconds: opts.delaySeconds }));
    return out.MessageId!;
  }

  async receive(max: number, waitSeconds: number, opts: { visibilitySeconds?: number; signal?: AbortSignal } = {}): Promise<ReceivedJob[]> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: Math.min(10, max),
        WaitTimeSeconds: waitSeconds,
        VisibilityTimeout: opts.visibilitySeconds,
        // local-aws-sqs answers system attributes only to AttributeNames (docs/service.md §7)
        AttributeNames: ['All'],
      }),
      { abortSignal: opts.signal },
    );
    return (out.Messages ?? []).map((m) => ({
      job: parseQueuedJob(m.Body),
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
      sentAt: Number(m.Attributes?.SentTimestamp ?? Date.now()),
    }));
  }

  async extendVisibility(receiptHandle: string, seconds: number): Promise<void> {
    await this.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }));
  }

  async delete(receiptHandle: string): Promise<void> {
    await this.sqs.send(new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receiptHandle }));
  }
}

export function parseQueuedJob(body: string | undefined): QueuedJob | null {
  try {
    const v = JSON.parse(body ?? '') as Partial<QueuedJob>;
    return typeof v?.predictionId === 'string' && typeof v.jobKey === 'string' ? { predictionId: v.predictionId, jobKey: v.jobKey } : null;
  } catch {
    return null;
  }
}
