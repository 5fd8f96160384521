import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import { JobDeadLetters } from './job-dead-letters.ts';
import { Alarms } from './alarms.ts';
import { Api } from './api.ts';
import { BucketCors } from './bucket-cors.ts';
import { ServiceEvents } from './events.ts';
import { GpuCapacity } from './gpu-capacity.ts';
import { GpuWorker } from './gpu-worker.ts';
import { JobQueue } from './job-queue.ts';
import { ModelLocation } from './model-location.ts';
import { Network } from './network.ts';
import { REPO_ROOT } from './service-function.ts';
import type { AnoleSettings } from './settings.ts';
import { Storage } from './storage.ts';
import { WorkerScaling } from './worker-scaling.ts';

export interface AnoleStackProps extends StackProps {
  settings: AnoleSettings;
  /** The API's Lambda entry, relative to the repository root (default functions/lambda.ts). */
  apiEntry?: string;
}

/**
 * Anole Serve on AWS, pay per use: nothing runs while no job is queued.
 *
 *   client ─▶ Function URL ─▶ API Lambda ─▶ S3 (job, status) + SQS (pointer)
 *   requests/ object, bus event ─▶ intake Lambda ─┘
 *   SQS backlog ─▶ alarms ─▶ worker tasks 0..N ─▶ ECS capacity provider ─▶ GPU instances 0..N
 *   worker ─▶ S3 (events, PNGs, status) ─▶ status.json event ─▶ "Prediction Completed" on the bus
 */
export class AnoleStack extends Stack {
  constructor(scope: Construct, id: string, props: AnoleStackProps) {
    super(scope, id, props);
    const { settings } = props;

    const storage = new Storage(this, 'Storage', settings);
    const jobs = new JobQueue(this, 'Queue', settings);
    const model = new ModelLocation(this, 'Model', { modelUri: settings.modelUri, dataBucket: storage.bucket });
    const network = new Network(this, 'Network', storage.logBucket);

    // The sidecar image, built from the repository root by sidecar/Dockerfile at deploy time (synth only stages it).
    const workerImage = new ecrAssets.DockerImageAsset(this, 'WorkerImage', {
      directory: REPO_ROOT,
      file: 'sidecar/Dockerfile',
      platform: ecrAssets.Platform.LINUX_AMD64,
    });

    const capacity = new GpuCapacity(this, 'Gpu', { network, settings, model, workerImage });
    const worker = new GpuWorker(this, 'Worker', {
      capacity,
      settings,
      bucket: storage.bucket,
      queue: jobs.queue,
      model,
      image: ecs.ContainerImage.fromDockerImageAsset(workerImage),
    });
    new WorkerScaling(this, 'Scaling', { service: worker.service, queue: jobs.queue, settings });

    const api = new Api(this, 'Api', { settings, bucket: storage.bucket, queue: jobs.queue, model, entry: props.apiEntry });
    new BucketCors(this, 'BucketCors', { bucket: storage.bucket, apiUrl: api.url.url, logRetentionDays: settings.logRetentionDays });
    const events = new ServiceEvents(this, 'Events', { settings, bucket: storage.bucket, queue: jobs.queue, model, apiUrl: api.url.url });
    new JobDeadLetters(this, 'JobDeadLetters', { settings, bucket: storage.bucket, deadLetters: jobs.deadLetters });
    const alarms = new Alarms(this, 'Alarms', { settings, jobs: jobs.queue, jobDeadLetters: jobs.deadLetters, eventDeadLetters: events.deadLetters });

    new CfnOutput(this, 'ApiUrl', { value: api.url.url, description: 'The API (Function URL)' });
    new CfnOutput(this, 'ApiAuth', { value: settings.apiAuth, description: 'iam: SigV4 with the ApiCallers policy; api-keys: Bearer keys from ApiKeysSecretArn' });
    if (api.callersPolicy) new CfnOutput(this, 'ApiCallersPolicyArn', { value: api.callersPolicy.managedPolicyArn });
    if (api.apiKeys) new CfnOutput(this, 'ApiKeysSecretArn', { value: api.apiKeys.secretArn });
    new CfnOutput(this, 'BucketName', { value: storage.bucket.bucketName });
    new CfnOutput(this, 'ModelUri', { value: model.uri, description: 'Upload the model bundle here (aws s3 sync DIR URI)' });
    new CfnOutput(this, 'QueueUrl', { value: jobs.queue.queueUrl });
    new CfnOutput(this, 'EventBusName', { value: events.bus.eventBusName });
    new CfnOutput(this, 'WebhookSecretArn', { value: worker.webhookSecret.secretArn });
    new CfnOutput(this, 'AlarmTopicArn', { value: alarms.topic.topicArn });
    new CfnOutput(this, 'ClusterName', { value: capacity.cluster.clusterName });
    new CfnOutput(this, 'WorkerServiceName', { value: worker.service.serviceName });
  }
}
