import { Duration } from 'aws-cdk-lib';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { grantPrefixes } from './bucket-access.ts';
import { ENV, KEYS } from './config.ts';
import { ServiceFunction } from './service-function.ts';
import type { AnoleSettings } from './settings.ts';

/**
 * The job queue's dead letters, drained: a Lambda (functions/dead-letters.ts) fails the prediction of
 * every job whose message no worker could finish in maxReceiveCount deliveries, so that no prediction
 * stays `starting` or `processing` for ever. The alarm on the dead-letter queue (alarms.ts) still sees
 * each message while it waits for the Lambda.
 */
export class JobDeadLetters extends Construct {
  constructor(scope: Construct, id: string, props: { settings: AnoleSettings; bucket: s3.IBucket; deadLetters: sqs.IQueue }) {
    super(scope, id);
    const drain = new ServiceFunction(this, 'Drain', {
      entry: 'functions/dead-letters.ts',
      description: 'Anole: fails the prediction of each dead-lettered job',
      environment: { [ENV.bucket]: props.bucket.bucketName },
      memorySize: 256,
      // below the dead-letter queue's visibility timeout (30 s), as an SQS event source requires
      timeout: Duration.seconds(25),
      logRetentionDays: props.settings.logRetentionDays,
    });
    drain.fn.addEventSource(new SqsEventSource(props.deadLetters, { batchSize: 10 }));
    grantPrefixes(drain.fn, drain.role, props.bucket, { read: [KEYS.predictions], write: [KEYS.predictions] }, 'the drain ends the predictions of dead-lettered jobs');
  }
}
