import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { CONTAINER, ENV, KEYS } from './config.ts';
import { grantPrefixes } from './bucket-access.ts';
import { AWS_CLI_IMAGE, type GpuCapacity } from './gpu-capacity.ts';
import type { ModelLocation } from './model-location.ts';
import type { AnoleSettings } from './settings.ts';

export interface GpuWorkerProps {
  capacity: GpuCapacity;
  settings: AnoleSettings;
  bucket: s3.IBucket;
  queue: sqs.IQueue;
  model: ModelLocation;
  image: ecs.ContainerImage;
}

/**
 * The sidecar as an ECS service on the GPU capacity provider, its task count set by the queue's
 * scaling (worker-scaling.ts). A task is two containers sharing the instance's model directory:
 *
 *   model-sync  aws s3 sync <model uri> → /opt/anole/model, then exits 0 (a warm-pool instance
 *               already has the files, so this only compares them)
 *   worker      `anole worker` on one GPU; starts once model-sync succeeded; reads the model
 *               read-only; drains on SIGTERM within the stop timeout
 */
export class GpuWorker extends Construct {
  readonly service: ecs.Ec2Service;
  readonly taskDefinition: ecs.Ec2TaskDefinition;
  readonly webhookSecret: secretsmanager.Secret;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: GpuWorkerProps) {
    super(scope, id);
    const { capacity, settings, bucket, queue, model } = props;

    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: settings.logRetentionDays, removalPolicy: RemovalPolicy.DESTROY });

    // Standard Webhooks signing key: 32 base64-alphabet characters (standardwebhooks accepts it with or
    // without the whsec_ prefix). Receivers verify with `whsec_` + this value.
    this.webhookSecret = new secretsmanager.Secret(this, 'WebhookSecret', {
      description: 'Anole: the key webhooks are signed with (Standard Webhooks)',
      generateSecretString: { passwordLength: 32, excludePunctuation: true, includeSpace: false },
    });
    Validations.of(this.webhookSecret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason: 'Webhook receivers hold a copy of this key, so it is rotated by hand together with them (README: "Deploying to AWS"), not on a schedule.',
    });

    this.taskDefinition = new ecs.Ec2TaskDefinition(this, 'Task', {
      // Bridge: the task needs no inbound port, and bridge containers cannot reach the instance's metadata service.
      networkMode: ecs.NetworkMode.BRIDGE,
      volumes: [{ name: 'model', host: { sourcePath: CONTAINER.hostModelDir } }],
    });

    const region = Stack.of(this).region;
    const modelSync = this.taskDefinition.addContainer('model-sync', {
      image: ecs.ContainerImage.fromRegistry(AWS_CLI_IMAGE),
      essential: false,
      command: ['s3', 'sync', model.uri, CONTAINER.modelDir, '--delete', '--only-show-errors', '--no-progress'],
      environment: { AWS_REGION: region },
      memoryReservationMiB: 256,
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'model-sync', logGroup: this.logGroup }),
    });
    modelSync.addMountPoints({ sourceVolume: 'model', containerPath: CONTAINER.modelDir, readOnly: false });

    const worker = this.taskDefinition.addContainer('worker', {
      image: props.image,
      essential: true,
      gpuCount: 1,
      memoryReservationMiB: settings.workerMemoryMiB,
      environment: {
        AWS_REGION: region,
        [ENV.bucket]: bucket.bucketName,
        [ENV.queueUrl]: queue.queueUrl,
        [ENV.model]: CONTAINER.modelDir,
        [ENV.healthPort]: String(CONTAINER.healthPort),
        // one delivery short of the queue's: the last delivery fails the job instead of dead-lettering it
        [ENV.maxAttempts]: String(settings.maxReceiveCount - 1),
        // what the scaling counts a task for; the worker checks at start that this batch fits its GPU and host
        [ENV.batchSize]: String(settings.jobsPerTask),
        // a line of CloudWatch metrics a minute: the scaling counts the cache rows waiting for a slot
        [ENV.metricsLogSeconds]: '60',
        ...(settings.maxContext ? { [ENV.maxContext]: String(settings.maxContext) } : {}),
      },
      secrets: { [ENV.webhookSecret]: ecs.Secret.fromSecretsManager(this.webhookSecret) },
      healthCheck: {
        command: ['CMD', 'node', '-e', HEALTH_PROBE],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        // Loading a 7B model onto the GPU takes minutes; /healthz answers 503 until it is done.
        startPeriod: Duration.seconds(300),
      },
      stopTimeout: Duration.seconds(CONTAINER.stopTimeoutSeconds),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'worker', logGroup: this.logGroup }),
    });
    worker.addMountPoints({ sourceVolume: 'model', containerPath: CONTAINER.modelDir, readOnly: true });
    worker.addContainerDependencies({ container: modelSync, condition: ecs.ContainerDependencyCondition.SUCCESS });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'The execution role pulls the worker image: ecr:GetAuthorizationToken has no resource-level permissions (the pull itself is scoped to the image repository).',
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason: 'The environment holds names only (bucket, queue URL, paths, counts); the one secret arrives through the secrets field from Secrets Manager.',
    });

    // Least privilege for the worker (task role): the keys it reads and writes, and the queue it consumes.
    const role = this.taskDefinition.taskRole;
    grantPrefixes(
      role,
      this.taskDefinition,
      bucket,
      { read: [KEYS.jobs, KEYS.inputs, KEYS.predictions, KEYS.outputs], write: [KEYS.predictions, KEYS.outputs] },
      'the worker reads jobs and prepared inputs, reads and writes status records, leases, event logs and outputs, and presigns output URLs for webhooks',
    );
    queue.grantConsumeMessages(role);
    model.grantRead(role, this.taskDefinition);

    this.service = new ecs.Ec2Service(this, 'Service', {
      cluster: capacity.cluster,
      taskDefinition: this.taskDefinition,
      // No desired count: the queue's scaling owns it (worker-scaling.ts), and a count in the template would be
      // reset by every deploy, stopping busy workers. (CloudFormation starts a new service at 1 task; the idle
      // scale-in takes it to 0 after idleMinutes.)
      // One GPU per instance: replace a task by stopping the old one first, never by adding an instance.
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      capacityProviderStrategies: [{ capacityProvider: capacity.capacityProvider.capacityProviderName, weight: 1, base: 0 }],
      circuitBreaker: { enable: true, rollback: true },
    });
    // The service names the capacity provider, which must be associated with the cluster first (the
    // association is a child of the cluster, created at synth).
    this.service.node.addDependency(capacity.cluster);
  }
}

/**
 * A one-line Node program: exit 0 when the worker's /healthz answers 2xx (the image has no curl).
 * The same probe as the Dockerfile's HEALTHCHECK.
 */
export const HEALTH_PROBE = `fetch('http://127.0.0.1:' + (process.env.${ENV.healthPort} || ${CONTAINER.healthPort}) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`;
