import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { AnoleSettings } from './settings.ts';

/**
 * The job queue (one message per prediction: a pointer to jobs/{id}.json) and its dead-letter queue.
 * The visibility timeout sits above the longest job, so a message a consumer forgot to extend still
 * outlives its job; the worker leases for less and extends while it works (start-worker.ts), so a
 * crashed worker's job comes back within a minute. After maxReceiveCount deliveries a message moves
 * to the dead-letter queue, where an alarm notices it.
 */
export class JobQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetters: sqs.Queue;

  constructor(scope: Construct, id: string, settings: AnoleSettings) {
    super(scope, id);
    this.deadLetters = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(this, 'Jobs', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: visibilityTimeout(settings),
      receiveMessageWaitTime: Duration.seconds(20),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetters, maxReceiveCount: settings.maxReceiveCount },
    });
  }
}

/** The longest job plus five minutes of slack for loading inputs and writing results (SQS caps it at 12 h). */
export function visibilityTimeout(settings: AnoleSettings): Duration {
  return Duration.minutes(Math.min(settings.maxJobMinutes + 5, 12 * 60));
}
