import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { apiEnvironment, grantApiAccess } from './api.ts';
import { grantPrefixes } from './bucket-access.ts';
import { ENV, EVENTS, KEYS } from './config.ts';
import type { ModelLocation } from './model-location.ts';
import { NATIVE_MODULES, ServiceFunction } from './service-function.ts';
import type { AnoleSettings } from './settings.ts';

export interface ServiceEventsProps {
  settings: AnoleSettings;
  bucket: s3.IBucket;
  queue: sqs.IQueue;
  model: ModelLocation;
  /** The API's URL, so "Prediction Accepted" carries the prediction's real URLs. */
  apiUrl: string;
}

/**
 * The event-driven side of the service, all on EventBridge:
 *
 *   in   an object put under requests/ (S3 → default bus)          ┐ request-intake Lambda
 *        "Prediction Requested" on the service's bus                ┘ → prediction, queued job
 *   out  "Prediction Accepted" / "Prediction Rejected" from the intake
 *        "Prediction Completed" when a status.json write makes a prediction terminal
 *
 * An event that cannot be delivered (EventBridge's retries) or that the Lambda keeps failing on (its
 * asynchronous retries) lands in one dead-letter queue, alarmed in alarms.ts.
 */
export class ServiceEvents extends Construct {
  readonly bus: events.EventBus;
  readonly intake: lambda.IFunction;
  readonly completion: lambda.IFunction;
  readonly deadLetters: sqs.Queue;

  constructor(scope: Construct, id: string, props: ServiceEventsProps) {
    super(scope, id);
    const { settings, bucket } = props;

    this.bus = new events.EventBus(this, 'Bus', { description: 'Anole: prediction requests in, their outcomes out' });
    this.deadLetters = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const intake = new ServiceFunction(this, 'Intake', {
      entry: 'infra/handlers/request-intake.ts',
      description: 'Anole: requests/ objects and Prediction Requested events to predictions',
      environment: { ...apiEnvironment(props), [ENV.eventBus]: this.bus.eventBusName, [ENV.apiUrl]: props.apiUrl },
      memorySize: 1769,
      timeout: Duration.minutes(2),
      logRetentionDays: settings.logRetentionDays,
      nodeModules: NATIVE_MODULES,
      deadLetterQueue: this.deadLetters,
    });
    this.intake = intake.fn;
    grantApiAccess(this.intake, intake.role, props);
    grantPrefixes(this.intake, intake.role, bucket, { read: [KEYS.requests] }, 'the intake reads the request objects it was told about');
    this.bus.grantPutEventsTo(this.intake);

    const completion = new ServiceFunction(this, 'Completion', {
      entry: 'infra/handlers/completion-events.ts',
      description: 'Anole: terminal status.json writes to Prediction Completed events',
      environment: { [ENV.bucket]: bucket.bucketName, [ENV.eventBus]: this.bus.eventBusName },
      memorySize: 256,
      timeout: Duration.seconds(30),
      logRetentionDays: settings.logRetentionDays,
      deadLetterQueue: this.deadLetters,
    });
    this.completion = completion.fn;
    grantPrefixes(this.completion, completion.role, bucket, { read: [KEYS.predictions] }, 'the completion publisher reads the status record that was written');
    this.bus.grantPutEventsTo(this.completion);

    const target = (fn: lambda.IFunction) =>
      new targets.LambdaFunction(fn, { retryAttempts: 4, maxEventAge: Duration.hours(2), deadLetterQueue: this.deadLetters });
    const objectCreated = (key: string[]) =>
      ({ source: ['aws.s3'], detailType: ['Object Created'], detail: { bucket: { name: [bucket.bucketName] }, object: { key } } }) as events.EventPattern;

    // S3 sends its events to the account's default bus.
    new events.Rule(this, 'RequestObjects', {
      description: 'Anole: a request object under requests/ starts a prediction',
      eventPattern: objectCreated(events.Match.prefix(KEYS.requests)),
      targets: [target(this.intake)],
    });
    new events.Rule(this, 'RequestEvents', {
      description: 'Anole: a Prediction Requested event starts a prediction',
      eventBus: this.bus,
      eventPattern: { detailType: [EVENTS.requested] },
      targets: [target(this.intake)],
    });
    new events.Rule(this, 'StatusWrites', {
      description: 'Anole: a terminal status.json write publishes Prediction Completed',
      eventPattern: objectCreated(events.Match.wildcard(KEYS.statusObjectPattern)),
      targets: [target(this.completion)],
    });
  }
}
