import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { AnoleSettings } from './settings.ts';

export interface AlarmsProps {
  settings: AnoleSettings;
  jobs: sqs.IQueue;
  jobDeadLetters: sqs.IQueue;
  eventDeadLetters: sqs.IQueue;
}

/**
 * What a person should hear about, on one SNS topic (plus an email subscription when configured):
 *
 *   dead jobs       a job failed maxReceiveCount deliveries and sits in the dead-letter queue
 *   job age         the oldest job has waited longer than expected: no GPU capacity (quota,
 *                   InsufficientInstanceCapacity), a crashing worker, or more work than maxInstances
 *   dead events     a request or completion event the intake/completion Lambdas could not handle
 */
export class Alarms extends Construct {
  readonly topic: sns.Topic;
  readonly deadJobs: cloudwatch.Alarm;
  readonly jobAge: cloudwatch.Alarm;
  readonly deadEvents: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const { settings } = props;
    const minute = Duration.minutes(1);

    // No customer-managed KMS key: it would bill every month while the service is idle, and the
    // notifications carry alarm names and states only.
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'Anole alarms', enforceSSL: true });
    if (settings.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(settings.alarmEmail));
    const notify = new cwActions.SnsAction(this.topic);

    this.deadJobs = new cloudwatch.Alarm(this, 'DeadJobs', {
      alarmDescription: 'Anole: a job is in the dead-letter queue (it failed every delivery)',
      metric: props.jobDeadLetters.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: 'Maximum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.jobAge = new cloudwatch.Alarm(this, 'JobAge', {
      alarmDescription: `Anole: the oldest job has waited over ${settings.jobAgeAlarmMinutes} min`,
      metric: props.jobs.metricApproximateAgeOfOldestMessage({ period: minute, statistic: 'Maximum' }),
      threshold: settings.jobAgeAlarmMinutes * 60,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.deadEvents = new cloudwatch.Alarm(this, 'DeadEvents', {
      alarmDescription: 'Anole: a request or completion event could not be handled (see the events dead-letter queue)',
      metric: props.eventDeadLetters.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: 'Maximum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    for (const alarm of [this.deadJobs, this.jobAge, this.deadEvents]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}
