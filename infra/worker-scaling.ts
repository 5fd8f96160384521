import { Duration, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { AnoleSettings } from './settings.ts';
import { METRICS_NAMESPACE, ROWS_WAITING_METRIC } from '../contract/worker-metrics.ts';

/**
 * Worker tasks from the queue backlog, 0 to maxInstances. The backlog is visible + in-flight messages
 * (jobs being worked on count, so a busy worker is never scaled away for emptying the visible queue)
 * + the cache rows the workers hold waiting for a slot (their CacheRowsWaiting metric lines,
 * sidecar/worker/metrics-log.ts): a worker that received more than its cache holds at once asks for
 * help even when the queue shows few messages.
 *
 *   scale out  backlog ≥ 1 for one minute → exactly ceil(backlog / jobsPerTask) tasks (at most max)
 *   scale in   backlog = 0 for idleMinutes → 0 tasks (then ECS frees the instances)
 *
 * Two alarms instead of one step policy, because the two directions need different patience: a
 * request should wake a GPU at once, a short lull should not send it away.
 */
export class WorkerScaling extends Construct {
  readonly target: appscaling.ScalableTarget;
  readonly backlog: cloudwatch.MathExpression;
  readonly scaleOutAlarm: cloudwatch.Alarm;
  readonly scaleInAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: { service: ecs.Ec2Service; queue: sqs.IQueue; settings: AnoleSettings }) {
    super(scope, id);
    const { service, queue, settings } = props;
    const minute = Duration.minutes(1);

    this.target = new appscaling.ScalableTarget(this, 'Target', {
      serviceNamespace: appscaling.ServiceNamespace.ECS,
      scalableDimension: 'ecs:service:DesiredCount',
      resourceId: `service/${service.cluster.clusterName}/${service.serviceName}`,
      minCapacity: 0,
      maxCapacity: settings.maxInstances,
      // Application Auto Scaling's service-linked role for ECS (what service.autoScaleTaskCount uses).
      role: iam.Role.fromRoleArn(
        this,
        'ServiceLinkedRole',
        Stack.of(this).formatArn({
          region: '',
          service: 'iam',
          resource: 'role/aws-service-role/ecs.application-autoscaling.amazonaws.com',
          resourceName: 'AWSServiceRoleForApplicationAutoScaling_ECSService',
        }),
      ),
    });
    this.target.node.addDependency(service);

    this.backlog = new cloudwatch.MathExpression({
      expression: 'visible + inflight + FILL(waiting, 0)',
      usingMetrics: {
        visible: queue.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: 'Maximum' }),
        inflight: queue.metricApproximateNumberOfMessagesNotVisible({ period: minute, statistic: 'Maximum' }),
        waiting: new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: ROWS_WAITING_METRIC, period: minute, statistic: 'Sum' }),
      },
      period: minute,
      label: 'jobs queued or running',
    });

    const scaleOut = new appscaling.StepScalingAction(this, 'ScaleOut', {
      scalingTarget: this.target,
      adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
      metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
      cooldown: minute,
    });
    for (const step of scaleOutSteps(settings)) scaleOut.addAdjustment(step);
    this.scaleOutAlarm = new cloudwatch.Alarm(this, 'BacklogAlarm', {
      alarmDescription: 'Anole: jobs are waiting or running; keep enough GPU workers for them',
      metric: this.backlog,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.scaleOutAlarm.addAlarmAction(new cwActions.ApplicationScalingAction(scaleOut));

    const scaleIn = new appscaling.StepScalingAction(this, 'ScaleIn', {
      scalingTarget: this.target,
      adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
      metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
      cooldown: minute,
    });
    scaleIn.addAdjustment({ upperBound: 0, adjustment: 0 });
    this.scaleInAlarm = new cloudwatch.Alarm(this, 'IdleAlarm', {
      alarmDescription: `Anole: no job queued or running for ${settings.idleMinutes} min; stop the GPU workers`,
      metric: this.backlog,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: settings.idleMinutes,
      datapointsToAlarm: settings.idleMinutes,
      // SQS stops publishing for a queue that has been empty for a while: no data means idle.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    this.scaleInAlarm.addAlarmAction(new cwActions.ApplicationScalingAction(scaleIn));
  }
}

/**
 * The scale-out steps, bounds relative to the alarm threshold (1): backlog in
 * [1 + (k−1)·perTask, 1 + k·perTask) → k tasks, the last step open-ended at maxInstances.
 */
export function scaleOutSteps(settings: Pick<AnoleSettings, 'maxInstances' | 'jobsPerTask'>): appscaling.AdjustmentTier[] {
  const { maxInstances, jobsPerTask } = settings;
  const steps: appscaling.AdjustmentTier[] = [];
  for (let k = 1; k <= maxInstances; k++) {
    steps.push({
      lowerBound: (k - 1) * jobsPerTask,
      ...(k < maxInstances ? { upperBound: k * jobsPerTask } : {}),
      adjustment: k,
    });
  }
  return steps;
}
