import fs from 'node:fs';
import path from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTAINER, ENV, EVENTS, KEYS } from '../infra/config.ts';
import { AWS_CLI_IMAGE, gp3Performance, WARM_POOL_HOOK } from '../infra/gpu-capacity.ts';
import { DEFAULT_SETTINGS } from '../infra/settings.ts';
import { auditNag, synthAnole, type Synthesized } from './infra-synth.ts';
import { METRICS_NAMESPACE, ROWS_WAITING_METRIC } from '../contract/worker-metrics.ts';

/**
 * The synthesized stack, property by property (issue 5), for the defaults and for a variant that
 * turns every knob: other instance types, a bigger ceiling, a model in another bucket, a longer
 * idle time, a warm pool, Bearer-key auth, an alarm email, a faster volume.
 */
let base: Synthesized;
let tuned: Synthesized;

const TUNED = {
  'anole:instanceTypes': 'g5.xlarge,g6e.xlarge',
  'anole:maxInstances': '4',
  'anole:modelUri': 's3://team-models/anole-7b-fp16/',
  'anole:idleMinutes': '30',
  'anole:warmPoolSize': '1',
  'anole:apiAuth': 'api-keys',
  'anole:jobsPerTask': '2',
  'anole:maxContext': '2048',
  'anole:maxJobMinutes': '60',
  'anole:maxReceiveCount': '7',
  'anole:logRetentionDays': '14',
  'anole:alarmEmail': 'ops@example.com',
  'anole:volumeThroughputMiBps': '1000',
};

beforeAll(() => {
  base = synthAnole();
  tuned = synthAnole(TUNED);
}, 120_000);

afterAll(() => {
  for (const s of [base, tuned]) if (s) fs.rmSync(s.outdir, { recursive: true, force: true });
});

const only = <T>(rs: Record<string, T>): [string, T] => {
  const entries = Object.entries(rs);
  expect(entries).toHaveLength(1);
  return entries[0];
};

/** Every IAM statement of the template (inline role policies, policies, managed policies). */
function statements(s: Synthesized): { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown }[] {
  const docs = [
    ...Object.values(s.resources('AWS::IAM::Policy')).map((r) => r.Properties.PolicyDocument),
    ...Object.values(s.resources('AWS::IAM::ManagedPolicy')).map((r) => r.Properties.PolicyDocument),
    ...Object.values(s.resources('AWS::IAM::Role')).flatMap((r) => (r.Properties.Policies ?? []).map((p: { PolicyDocument: unknown }) => p.PolicyDocument)),
  ];
  return docs.flatMap((d) => d.Statement);
}
const actionsOf = (st: { Action: string | string[] }) => (Array.isArray(st.Action) ? st.Action : [st.Action]);
const resourcesOf = (st: { Resource: unknown }) => (Array.isArray(st.Resource) ? st.Resource : [st.Resource]);

describe('synthesis', () => {
  it('is environment-agnostic and needs no lookups: no account or region, no missing context', () => {
    expect(Stack.of(base.stack).account).toMatch(/^\$\{Token/);
    const assembly = base.app.synth();
    expect(assembly.manifest.missing ?? []).toEqual([]);
    expect(Annotations.fromStack(base.stack).findError('*', Match.anyValue())).toEqual([]);
  });

  it('creates no launch configuration (new accounts cannot), only a launch template', () => {
    base.template.resourceCountIs('AWS::AutoScaling::LaunchConfiguration', 0);
    base.template.resourceCountIs('AWS::EC2::LaunchTemplate', 1);
  });
});

describe('storage', () => {
  it('the data bucket is private, encrypted, TLS-only, logged and sends object events to EventBridge', () => {
    const [, bucket] = Object.entries(base.resources('AWS::S3::Bucket')).find(([id]) => id.startsWith('StorageData'))!;
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(bucket.Properties.LoggingConfiguration.LogFilePrefix).toBe('data/');
    base.template.hasResourceProperties('Custom::S3BucketNotifications', { NotificationConfiguration: { EventBridgeConfiguration: {} } });
    base.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^StorageData') },
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  it('lifecycle rules expire outputs and uploads (and the records around them) after the configured days', () => {
    const [, bucket] = Object.entries(base.resources('AWS::S3::Bucket')).find(([id]) => id.startsWith('StorageData'))!;
    const rules = Object.fromEntries(bucket.Properties.LifecycleConfiguration.Rules.map((r: { Id: string }) => [r.Id, r]));
    expect(rules.outputs).toMatchObject({ Prefix: KEYS.outputs, ExpirationInDays: DEFAULT_SETTINGS.outputsExpireDays, Status: 'Enabled' });
    expect(rules.uploads).toMatchObject({ Prefix: KEYS.uploads, ExpirationInDays: DEFAULT_SETTINGS.uploadsExpireDays, Status: 'Enabled' });
    expect(rules.requests).toMatchObject({ Prefix: KEYS.requests, ExpirationInDays: DEFAULT_SETTINGS.uploadsExpireDays });
    for (const prefix of [KEYS.predictions, KEYS.jobs, KEYS.inputs, KEYS.owners]) {
      expect(Object.values(rules)).toContainEqual(expect.objectContaining({ Prefix: prefix, ExpirationInDays: DEFAULT_SETTINGS.outputsExpireDays }));
    }
    expect(rules['abort-incomplete-multipart'].AbortIncompleteMultipartUpload).toEqual({ DaysAfterInitiation: 1 });
  });

  it("CORS lets the playground (on the Function URL's origin) PUT uploads with their Content-Type and fetch previews", () => {
    // the rule the deploy-time custom resource puts (infra/bucket-cors.ts), its origin resolved as CloudFormation would
    const [, cors] = only(base.resources('Custom::AWS'));
    const [urlId] = only(base.resources('AWS::Lambda::Url'));
    const page = 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws';
    const resolve = (v: unknown): string => {
      if (typeof v === 'string') return v;
      const o = v as Record<string, any>;
      if (o['Fn::Join']) return o['Fn::Join'][1].map(resolve).join(o['Fn::Join'][0]);
      if (o['Fn::Select'] && o['Fn::Select'][1]['Fn::Split']) {
        const [sep, of] = o['Fn::Select'][1]['Fn::Split'];
        expect(of).toEqual({ 'Fn::GetAtt': [urlId, 'FunctionUrl'] });
        return `${page}/`.split(sep)[o['Fn::Select'][0]];
      }
      if (o.Ref) return 'anole-data-bucket';
      throw new Error(`unexpected ${JSON.stringify(v)}`);
    };
    const call = JSON.parse(resolve(cors.Properties.Create));
    expect(call).toMatchObject({ service: 'S3', action: 'putBucketCors', parameters: { Bucket: 'anole-data-bucket' } });
    type Rule = { AllowedOrigins: string[]; AllowedMethods: string[]; AllowedHeaders?: string[] };
    const rules: Rule[] = call.parameters.CORSConfiguration.CORSRules;
    // S3's matching: an origin or header entry may hold one "*" wildcard; headers are case-insensitive
    const matches = (patterns: string[] | undefined, value: string) =>
      (patterns ?? []).some((p) => new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i').test(value));
    const allows = (origin: string, method: string, headers: string[]) =>
      rules.some((r) => matches(r.AllowedOrigins, origin) && r.AllowedMethods.includes(method) && headers.every((h) => matches(r.AllowedHeaders, h)));
    // what functions/playground sends: the upload's PUT with the headers POST /v1/uploads names, and plain GETs
    expect(allows(page, 'PUT', ['content-type'])).toBe(true);
    expect(allows(page, 'GET', [])).toBe(true);
    expect(allows(page, 'DELETE', [])).toBe(false);
    // and no other origin
    expect(allows('https://other0123456789.lambda-url.eu-west-1.on.aws', 'GET', [])).toBe(false);
    expect(rules.flatMap((r) => r.AllowedOrigins)).toEqual([page]);
  });
});

describe('queue', () => {
  it('jobs have a dead-letter queue after maxReceiveCount deliveries and a visibility timeout above the longest job', () => {
    const queues = base.resources('AWS::SQS::Queue');
    const [, jobs] = Object.entries(queues).find(([id]) => id.startsWith('QueueJobs'))!;
    const [dlqId] = Object.entries(queues).find(([id]) => id.startsWith('QueueDeadLetters'))!;
    expect(jobs.Properties.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount: 5 });
    expect(jobs.Properties.VisibilityTimeout).toBeGreaterThan(DEFAULT_SETTINGS.maxJobMinutes * 60);
    expect(jobs.Properties.SqsManagedSseEnabled).toBe(true);

    const [, tunedJobs] = Object.entries(tuned.resources('AWS::SQS::Queue')).find(([id]) => id.startsWith('QueueJobs'))!;
    expect(tunedJobs.Properties.RedrivePolicy.maxReceiveCount).toBe(7);
    expect(tunedJobs.Properties.VisibilityTimeout).toBeGreaterThan(60 * 60);
    // the worker gives up after as many deliveries as the queue allows
    const worker = only(tuned.resources('AWS::ECS::TaskDefinition'))[1].Properties.ContainerDefinitions.find((c: { Name: string }) => c.Name === 'worker');
    expect(worker.Environment).toContainEqual({ Name: ENV.maxAttempts, Value: '6' }); // one short of maxReceiveCount 7
    expect(worker.Environment).toContainEqual({ Name: ENV.metricsLogSeconds, Value: '60' }); // the scaling reads its CacheRowsWaiting
    // the cache slots' length, the same for the workers and the API (which refuses longer jobs); unset by default
    expect(worker.Environment).toContainEqual({ Name: ENV.maxContext, Value: '2048' });
  });

  it('dead-lettered jobs are drained by a Lambda that fails their predictions (within the queue visibility)', () => {
    const queues = base.resources('AWS::SQS::Queue');
    const [dlqId, dlq] = Object.entries(queues).find(([id]) => id.startsWith('QueueDeadLetters'))!;
    const [, mapping] = only(base.resources('AWS::Lambda::EventSourceMapping'));
    expect(mapping.Properties.EventSourceArn).toEqual({ 'Fn::GetAtt': [dlqId, 'Arn'] });
    const fnId = mapping.Properties.FunctionName.Ref as string;
    const fn = base.resources('AWS::Lambda::Function')[fnId];
    expect(fnId).toMatch(/^JobDeadLettersDrain/);
    expect(fn.Properties.Environment.Variables[ENV.bucket]).toBeDefined();
    expect(fn.Properties.Timeout).toBeLessThan(dlq.Properties.VisibilityTimeout ?? 30);
    // it may write prediction records, and only those
    const writes = statements(base).filter((st) => actionsOf(st).includes('s3:PutObject') && JSON.stringify(st.Resource).includes(KEYS.predictions));
    expect(writes.length).toBeGreaterThan(0);
  });

  it('every queue refuses plain-HTTP access', () => {
    const policies = Object.values(base.resources('AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(3);
    for (const p of policies) {
      expect(p.Properties.PolicyDocument.Statement).toContainEqual(expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }));
    }
  });
});

describe('API', () => {
  const apiFunction = (s: Synthesized) => Object.entries(s.resources('AWS::Lambda::Function')).find(([id]) => id.startsWith('ApiHandler'))!;

  it('runs on nodejs22.x behind a streaming Function URL with IAM auth, for 15 minutes at most', () => {
    const [id, fn] = apiFunction(base);
    expect(fn.Properties.Runtime).toBe('nodejs22.x');
    expect(fn.Properties.Handler).toBe('index.handler');
    expect(fn.Properties.Timeout).toBe(900);
    const [, url] = only(base.resources('AWS::Lambda::Url'));
    expect(url.Properties).toEqual({ AuthType: 'AWS_IAM', InvokeMode: 'RESPONSE_STREAM', TargetFunctionArn: { 'Fn::GetAtt': [id, 'Arn'] } });
    // who may call: a managed policy with both halves of Function URL auth
    const [, callers] = only(base.resources('AWS::IAM::ManagedPolicy'));
    expect(callers.Properties.PolicyDocument.Statement).toEqual([
      { Effect: 'Allow', Action: 'lambda:InvokeFunctionUrl', Resource: { 'Fn::GetAtt': [id, 'Arn'] }, Condition: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } } },
      { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': [id, 'Arn'] }, Condition: { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } } },
    ]);
  });

  it('reads the bucket, queue and model location from the environment names the code reads; no keys in iam mode', () => {
    const env = apiFunction(base)[1].Properties.Environment.Variables;
    expect(env[ENV.bucket]).toEqual({ Ref: expect.stringMatching(/^StorageData/) });
    expect(env[ENV.queueUrl]).toEqual({ Ref: expect.stringMatching(/^QueueJobs/) });
    expect(env[ENV.model]).toEqual({ 'Fn::Join': ['', ['s3://', { Ref: expect.stringMatching(/^StorageData/) }, `/${KEYS.models}`]] });
    expect(env[ENV.apiKeys]).toBeUndefined();
  });

  it('maxContext reaches the API too (it refuses a job longer than the workers\' cache slots); unset by default', () => {
    expect(apiFunction(tuned)[1].Properties.Environment.Variables[ENV.maxContext]).toBe('2048');
    expect(apiFunction(base)[1].Properties.Environment.Variables[ENV.maxContext]).toBeUndefined();
  });

  it('api-keys mode: an open URL, and Bearer keys from a generated secret resolved at deploy time (not in the template)', () => {
    const [, url] = only(tuned.resources('AWS::Lambda::Url'));
    expect(url.Properties.AuthType).toBe('NONE');
    expect(url.Properties.InvokeMode).toBe('RESPONSE_STREAM');
    tuned.template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    const [secretId] = Object.entries(tuned.resources('AWS::SecretsManager::Secret')).find(([id]) => id.startsWith('ApiApiKeys'))!;
    const keys = apiFunction(tuned)[1].Properties.Environment.Variables[ENV.apiKeys];
    expect(JSON.stringify(keys)).toContain('{{resolve:secretsmanager:');
    expect(JSON.stringify(keys)).toContain(secretId);
    tuned.template.hasOutput('ApiKeysSecretArn', { Value: { Ref: secretId } });
  });
});

describe('GPU workers', () => {
  it('an Auto Scaling group of g6.xlarge (by default) from 0 to maxInstances, launched from the ECS GPU AMI with IMDSv2 and an encrypted volume', () => {
    const [, asg] = only(base.resources('AWS::AutoScaling::AutoScalingGroup'));
    expect(asg.Properties.MinSize).toBe('0');
    expect(asg.Properties.MaxSize).toBe(String(DEFAULT_SETTINGS.maxInstances));
    expect(asg.Properties.DesiredCapacity).toBeUndefined();
    expect(asg.Properties.NewInstancesProtectedFromScaleIn).toBe(true);
    expect(asg.Properties.MixedInstancesPolicy.LaunchTemplate.Overrides).toEqual([{ InstanceType: 'g6.xlarge' }]);

    const [, lt] = only(base.resources('AWS::EC2::LaunchTemplate'));
    const data = lt.Properties.LaunchTemplateData;
    const [param] = Object.entries(base.template.toJSON().Parameters as Record<string, { Default: string }>).find(([id]) => id === data.ImageId.Ref)!;
    expect(base.template.toJSON().Parameters[param].Default).toBe('/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id');
    expect(data.MetadataOptions).toEqual({ HttpTokens: 'required', HttpPutResponseHopLimit: 1 });
    expect(data.BlockDeviceMappings).toEqual([{ DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: true, Encrypted: true, VolumeSize: DEFAULT_SETTINGS.volumeGiB, VolumeType: 'gp3' } }]);
    const userData = JSON.stringify(data.UserData);
    expect(userData).toContain('ECS_ENABLE_GPU_SUPPORT=true');
    expect(userData).toContain('ECS_IMAGE_PULL_BEHAVIOR=prefer-cached');
    expect(userData).not.toContain('ECS_WARM_POOLS_CHECK');
    base.template.resourceCountIs('AWS::AutoScaling::WarmPool', 0);
  });

  it('the instance types (the family) and the ceiling come from context', () => {
    const [, asg] = only(tuned.resources('AWS::AutoScaling::AutoScalingGroup'));
    expect(asg.Properties.MaxSize).toBe('4');
    expect(asg.Properties.MixedInstancesPolicy.LaunchTemplate.Overrides).toEqual([{ InstanceType: 'g5.xlarge' }, { InstanceType: 'g6e.xlarge' }]);
    expect(asg.Properties.MixedInstancesPolicy.InstancesDistribution.OnDemandAllocationStrategy).toBe('prioritized');
  });

  it('a faster volume comes with the IOPS gp3 asks for it (0.25 MiB/s per IOPS; 3000 IOPS and 125 MiB/s are free)', () => {
    const [, lt] = only(tuned.resources('AWS::EC2::LaunchTemplate'));
    expect(lt.Properties.LaunchTemplateData.BlockDeviceMappings[0].Ebs).toMatchObject({ VolumeType: 'gp3', Throughput: 1000, Iops: 4000 });
    expect(gp3Performance(125)).toEqual({});
    expect(gp3Performance(500)).toEqual({ throughput: 500, iops: 3000 });
    expect(gp3Performance(2000)).toEqual({ throughput: 2000, iops: 8000 });
  });

  it('the group is an ECS capacity provider with managed scaling and termination protection, associated with the cluster', () => {
    const [cpId, cp] = only(base.resources('AWS::ECS::CapacityProvider'));
    expect(cp.Properties.AutoScalingGroupProvider).toMatchObject({
      ManagedScaling: { Status: 'ENABLED', TargetCapacity: 100 },
      ManagedTerminationProtection: 'ENABLED',
      ManagedDraining: 'ENABLED',
    });
    const [, assoc] = only(base.resources('AWS::ECS::ClusterCapacityProviderAssociations'));
    expect(assoc.Properties.CapacityProviders).toEqual([{ Ref: cpId }]);
  });

  it('the service leaves its task count to the scaling (no DesiredCount), uses that capacity provider, and waits for the association', () => {
    const [cpId] = only(base.resources('AWS::ECS::CapacityProvider'));
    const [assocId] = only(base.resources('AWS::ECS::ClusterCapacityProviderAssociations'));
    const [, service] = only(base.resources('AWS::ECS::Service'));
    expect(service.Properties).not.toHaveProperty('DesiredCount');
    expect(service.Properties.CapacityProviderStrategy).toEqual([{ Base: 0, CapacityProvider: { Ref: cpId }, Weight: 1 }]);
    expect(service.Properties.DeploymentConfiguration).toMatchObject({ MinimumHealthyPercent: 0, MaximumPercent: 100 });
    expect(service.DependsOn).toContain(assocId);
  });

  it('a task is a model-sync container (S3 → the instance volume) and the worker on one GPU, with the model read at start, not baked in', () => {
    const [, task] = only(base.resources('AWS::ECS::TaskDefinition'));
    expect(task.Properties.NetworkMode).toBe('bridge');
    expect(task.Properties.Volumes).toEqual([{ Name: 'model', Host: { SourcePath: CONTAINER.hostModelDir } }]);
    const [sync, worker] = task.Properties.ContainerDefinitions;
    expect(sync).toMatchObject({ Name: 'model-sync', Essential: false, Image: AWS_CLI_IMAGE });
    expect(sync.Command.slice(0, 2)).toEqual(['s3', 'sync']);
    expect(sync.Command[2]).toEqual({ 'Fn::Join': ['', ['s3://', { Ref: expect.stringMatching(/^StorageData/) }, `/${KEYS.models}`]] });
    expect(sync.Command.slice(3, 5)).toEqual([CONTAINER.modelDir, '--delete']);
    expect(sync.MountPoints).toEqual([{ ContainerPath: CONTAINER.modelDir, ReadOnly: false, SourceVolume: 'model' }]);

    expect(worker.Name).toBe('worker');
    expect(worker.ResourceRequirements).toEqual([{ Type: 'GPU', Value: '1' }]);
    expect(worker.DependsOn).toEqual([{ Condition: 'SUCCESS', ContainerName: 'model-sync' }]);
    expect(worker.MountPoints).toEqual([{ ContainerPath: CONTAINER.modelDir, ReadOnly: true, SourceVolume: 'model' }]);
    expect(worker.Environment).toContainEqual({ Name: ENV.model, Value: CONTAINER.modelDir });
    expect(worker.Environment).toContainEqual({ Name: ENV.bucket, Value: { Ref: expect.stringMatching(/^StorageData/) } });
    expect(worker.Environment).toContainEqual({ Name: ENV.queueUrl, Value: { Ref: expect.stringMatching(/^QueueJobs/) } });
    expect(worker.Secrets).toEqual([{ Name: ENV.webhookSecret, ValueFrom: { Ref: expect.stringMatching(/^WorkerWebhookSecret/) } }]);
    expect(worker.StopTimeout).toBe(CONTAINER.stopTimeoutSeconds);
    expect(worker.HealthCheck.Command.join(' ')).toContain('/healthz');
    expect(worker.Image['Fn::Sub']).toContain('container-assets');
  });

  it('a model in another bucket is synced from there, and read with grants on that bucket', () => {
    const [, task] = only(tuned.resources('AWS::ECS::TaskDefinition'));
    expect(task.Properties.ContainerDefinitions[0].Command[2]).toBe('s3://team-models/anole-7b-fp16/');
    const reads = statements(tuned).filter((s) => actionsOf(s).includes('s3:GetObject'));
    expect(JSON.stringify(reads)).toContain('team-models/anole-7b-fp16/*');
  });

  it('the optional warm pool: stopped instances, prefilled by a boot script held by a launch lifecycle hook', () => {
    const [asgId] = only(tuned.resources('AWS::AutoScaling::AutoScalingGroup'));
    const [, pool] = only(tuned.resources('AWS::AutoScaling::WarmPool'));
    // ECS does not support instances going back into the pool on scale-in
    expect(pool.Properties).toEqual({ AutoScalingGroupName: { Ref: asgId }, MinSize: 1, MaxGroupPreparedCapacity: 1, PoolState: 'Stopped', InstanceReusePolicy: { ReuseOnScaleIn: false } });
    const [, hook] = only(tuned.resources('AWS::AutoScaling::LifecycleHook'));
    expect(hook.Properties).toMatchObject({ AutoScalingGroupName: { Ref: asgId }, LifecycleHookName: WARM_POOL_HOOK, LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING', DefaultResult: 'CONTINUE' });
    const userData = JSON.stringify(only(tuned.resources('AWS::EC2::LaunchTemplate'))[1].Properties.LaunchTemplateData.UserData);
    expect(userData).toContain('ECS_WARM_POOLS_CHECK=true');
    expect(userData).toContain('anole-warm-pool.service');
    expect(userData).toContain('s3://team-models/anole-7b-fp16/');
    expect(userData).toContain('complete-lifecycle-action');
    expect(userData).not.toMatch(/__[A-Z_]+__/); // every placeholder of warm-pool-boot.sh was filled
  });
});

describe('the worker image', () => {
  /** Every file reachable from bin/anole.js by relative imports (static and literal dynamic ones). */
  function importClosure(entry: string): string[] {
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = path.normalize(path.join(path.dirname(file), m[1]));
        // the image has no benchmarks: `anole bench` is a development command
        if (target.startsWith('bench/')) continue;
        visit(target);
      }
    };
    visit(entry);
    return [...seen];
  }

  it('the build context CDK stages (after .dockerignore) holds every module the CLI and worker import, and no node_modules or models', () => {
    const assembly = base.app.synth();
    const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${base.stack.artifactId}.assets.json`), 'utf8'));
    const images = Object.values(manifest.dockerImages) as { source: { directory: string; dockerFile: string } }[];
    expect(images).toHaveLength(1);
    expect(images[0].source.dockerFile).toBe('sidecar/Dockerfile');
    const context = path.join(assembly.directory, images[0].source.directory);
    const files = importClosure('bin/anole.js');
    expect(files.length).toBeGreaterThan(20);
    expect(files).toContain('cli/main.ts');
    expect(files.filter((f) => !fs.existsSync(path.join(context, f)))).toEqual([]);
    for (const f of ['package.json', 'package-lock.json', '.npmrc', 'sidecar/Dockerfile', 'sidecar/worker/start-worker.ts', 'scripts/build-dist.ts']) expect(fs.existsSync(path.join(context, f)), f).toBe(true);
    for (const d of ['node_modules', 'test', '.cache', 'cdk.out', 'tmp']) expect(fs.existsSync(path.join(context, d)), d).toBe(false);
  });
});

describe('scaling on the queue backlog', () => {
  const alarm = (s: Synthesized, prefix: string) => Object.entries(s.resources('AWS::CloudWatch::Alarm')).find(([id]) => id.startsWith(prefix))![1].Properties;

  it('task count 0..maxInstances, from visible + in-flight messages + cache rows waiting in the workers', () => {
    const [, target] = only(base.resources('AWS::ApplicationAutoScaling::ScalableTarget'));
    expect(target.Properties).toMatchObject({ MinCapacity: 0, MaxCapacity: DEFAULT_SETTINGS.maxInstances, ScalableDimension: 'ecs:service:DesiredCount', ServiceNamespace: 'ecs' });
    const backlog = alarm(base, 'ScalingBacklogAlarm');
    expect(backlog.Metrics[0]).toMatchObject({ Expression: 'visible + inflight + FILL(waiting, 0)' });
    expect(backlog.Metrics.slice(1).map((m: { MetricStat: { Metric: { MetricName: string } } }) => m.MetricStat.Metric.MetricName)).toEqual([
      'ApproximateNumberOfMessagesVisible',
      'ApproximateNumberOfMessagesNotVisible',
      ROWS_WAITING_METRIC,
    ]);
    // the workers' embedded-metric lines, summed over the minute (the worker writes them every 60 s)
    expect(backlog.Metrics[3].MetricStat).toMatchObject({ Metric: { Namespace: METRICS_NAMESPACE }, Stat: 'Sum', Period: 60 });
    expect(backlog).toMatchObject({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', EvaluationPeriods: 1 });
  });

  it('scale-out sets exactly ceil(backlog / jobsPerTask) tasks up to the ceiling', () => {
    const policy = (s: Synthesized) => Object.entries(s.resources('AWS::ApplicationAutoScaling::ScalingPolicy')).find(([id]) => id.startsWith('ScalingScaleOut'))![1].Properties.StepScalingPolicyConfiguration;
    expect(policy(base)).toMatchObject({
      AdjustmentType: 'ExactCapacity',
      StepAdjustments: [
        { MetricIntervalLowerBound: 0, MetricIntervalUpperBound: 1, ScalingAdjustment: 1 },
        { MetricIntervalLowerBound: 1, ScalingAdjustment: 2 },
      ],
    });
    // bounds are relative to the threshold (1): 2 jobs per task → 1–2 jobs: 1 task, 3–4: 2, … 7+: 4
    expect(policy(tuned).StepAdjustments).toEqual([
      { MetricIntervalLowerBound: 0, MetricIntervalUpperBound: 2, ScalingAdjustment: 1 },
      { MetricIntervalLowerBound: 2, MetricIntervalUpperBound: 4, ScalingAdjustment: 2 },
      { MetricIntervalLowerBound: 4, MetricIntervalUpperBound: 6, ScalingAdjustment: 3 },
      { MetricIntervalLowerBound: 6, ScalingAdjustment: 4 },
    ]);
  });

  it('scale-in to 0 after idleMinutes of an empty queue (missing data counts as empty)', () => {
    for (const [s, minutes] of [[base, DEFAULT_SETTINGS.idleMinutes], [tuned, 30]] as const) {
      const idle = alarm(s, 'ScalingIdleAlarm');
      expect(idle).toMatchObject({ Threshold: 1, ComparisonOperator: 'LessThanThreshold', EvaluationPeriods: minutes, DatapointsToAlarm: minutes, TreatMissingData: 'breaching' });
      const policy = Object.entries(s.resources('AWS::ApplicationAutoScaling::ScalingPolicy')).find(([id]) => id.startsWith('ScalingScaleIn'))![1];
      expect(policy.Properties.StepScalingPolicyConfiguration).toMatchObject({ AdjustmentType: 'ExactCapacity', StepAdjustments: [{ MetricIntervalUpperBound: 0, ScalingAdjustment: 0 }] });
      expect(idle.AlarmActions).toEqual([{ Ref: Object.keys(s.resources('AWS::ApplicationAutoScaling::ScalingPolicy')).find((id) => id.startsWith('ScalingScaleIn')) }]);
    }
  });
});

describe('events', () => {
  it('a requests/ object and a Prediction Requested event start a prediction; a status.json write announces completion', () => {
    const rules = base.resources('AWS::Events::Rule');
    const fnId = (prefix: string) => Object.keys(base.resources('AWS::Lambda::Function')).find((id) => id.startsWith(prefix))!;
    const rule = (prefix: string) => Object.entries(rules).find(([id]) => id.startsWith(prefix))![1].Properties;
    const [busId] = only(base.resources('AWS::Events::EventBus'));

    expect(rule('EventsRequestObjects').EventPattern).toEqual({
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: { bucket: { name: [{ Ref: expect.stringMatching(/^StorageData/) }] }, object: { key: [{ prefix: KEYS.requests }] } },
    });
    expect(rule('EventsRequestObjects').EventBusName).toBeUndefined(); // S3 publishes to the default bus
    expect(rule('EventsRequestEvents')).toMatchObject({ EventBusName: { Ref: busId }, EventPattern: { 'detail-type': [EVENTS.requested] } });
    expect(rule('EventsStatusWrites').EventPattern.detail.object.key).toEqual([{ wildcard: KEYS.statusObjectPattern }]);

    for (const [name, target] of [['EventsRequestObjects', 'EventsIntake'], ['EventsRequestEvents', 'EventsIntake'], ['EventsStatusWrites', 'EventsCompletion']]) {
      expect(rule(name).Targets).toEqual([
        expect.objectContaining({ Arn: { 'Fn::GetAtt': [fnId(target), 'Arn'] }, DeadLetterConfig: { Arn: { 'Fn::GetAtt': [expect.stringMatching(/^EventsDeadLetters/), 'Arn'] } } }),
      ]);
    }
    // both Lambdas publish to the bus
    for (const prefix of ['EventsIntake', 'EventsCompletion']) {
      const fn = base.resources('AWS::Lambda::Function')[fnId(prefix)];
      expect(fn.Properties.Environment.Variables[ENV.eventBus]).toEqual({ Ref: busId });
      expect(fn.Properties.DeadLetterConfig).toEqual({ TargetArn: { 'Fn::GetAtt': [expect.stringMatching(/^EventsDeadLetters/), 'Arn'] } });
    }
    expect(statements(base).filter((s) => actionsOf(s).includes('events:PutEvents')).map((s) => s.Resource)).toEqual([
      { 'Fn::GetAtt': [busId, 'Arn'] },
      { 'Fn::GetAtt': [busId, 'Arn'] },
    ]);
  });
});

describe('alarms and logs', () => {
  it('alarms on a non-empty dead-letter queue and on job age, notifying one topic (and the configured email)', () => {
    const alarms = base.resources('AWS::CloudWatch::Alarm');
    const [topicId] = only(base.resources('AWS::SNS::Topic'));
    const dead = Object.entries(alarms).find(([id]) => id.startsWith('AlarmsDeadJobs'))![1].Properties;
    expect(dead).toMatchObject({ MetricName: 'ApproximateNumberOfMessagesVisible', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', AlarmActions: [{ Ref: topicId }] });
    expect(dead.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^QueueDeadLetters/), 'QueueName'] });
    const age = Object.entries(alarms).find(([id]) => id.startsWith('AlarmsJobAge'))![1].Properties;
    expect(age).toMatchObject({ MetricName: 'ApproximateAgeOfOldestMessage', Threshold: DEFAULT_SETTINGS.jobAgeAlarmMinutes * 60, AlarmActions: [{ Ref: topicId }] });
    expect(age.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^QueueJobs/), 'QueueName'] });
    base.template.resourceCountIs('AWS::SNS::Subscription', 0);
    tuned.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  });

  it('every log group of the service has the configured retention; every service Lambda and container writes to one', () => {
    for (const [s, days] of [[base, DEFAULT_SETTINGS.logRetentionDays], [tuned, 14]] as const) {
      const groups = s.resources('AWS::Logs::LogGroup');
      expect(Object.keys(groups)).toHaveLength(6); // the worker's, four functions' (API, intake, completion, dead-letter drain), the deploy-time CORS handler's
      for (const g of Object.values(groups)) expect(g.Properties.RetentionInDays).toBe(days);
      for (const [id, fn] of Object.entries(s.resources('AWS::Lambda::Function')).filter(([id]) => /^(Api|Events|JobDeadLetters)/.test(id))) {
        expect(groups[fn.Properties.LoggingConfig.LogGroup.Ref], id).toBeDefined();
      }
      for (const c of only(s.resources('AWS::ECS::TaskDefinition'))[1].Properties.ContainerDefinitions) {
        expect(groups[c.LogConfiguration.Options['awslogs-group'].Ref]).toBeDefined();
      }
    }
  });
});

describe('least privilege', () => {
  it('no wildcard actions except the ECS agent state reports, and * resources only for actions that have no resource scoping', () => {
    for (const s of [base, tuned]) {
      const all = statements(s).filter((st) => st.Effect === 'Allow');
      const wildcardActions = all.flatMap(actionsOf).filter((a) => a.includes('*'));
      expect([...new Set(wildcardActions)]).toEqual(['ecs:Submit*']);
      const starActions = new Set(all.filter((st) => resourcesOf(st).includes('*')).flatMap(actionsOf));
      for (const a of starActions) {
        expect([
          'ecs:DiscoverPollEndpoint',
          'ecr:GetAuthorizationToken',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'ecs:Poll',
          'ecs:StartTelemetrySession',
          'autoscaling:DescribeAutoScalingInstances',
          // CDK's deploy-time custom resources (bucket notifications, default security group)
          's3:PutBucketNotification',
        ]).toContain(a);
      }
    }
  });

  it('S3 access is by key prefix with exact actions: the worker cannot touch uploads, idempotency records or requests', () => {
    const taskRole = Object.entries(base.resources('AWS::IAM::Policy')).find(([id]) => id.startsWith('WorkerTaskTaskRole'))![1];
    const text = JSON.stringify(taskRole.Properties.PolicyDocument);
    for (const prefix of [KEYS.jobs, KEYS.inputs, KEYS.predictions, KEYS.outputs, KEYS.models]) expect(text).toContain(`/${prefix}*`);
    for (const prefix of [KEYS.uploads, KEYS.idempotency, KEYS.requests, KEYS.owners]) expect(text).not.toContain(`/${prefix}*`);
    const writes = taskRole.Properties.PolicyDocument.Statement.filter((st: { Action: string }) => st.Action === 's3:PutObject');
    expect(JSON.stringify(writes)).not.toContain(`/${KEYS.jobs}*`);
    expect(text).not.toContain('s3:DeleteObject');
  });

  it('no AWS managed policies on the service roles (the API Lambda writes to its own log group only)', () => {
    for (const [id, role] of Object.entries(base.resources('AWS::IAM::Role'))) {
      // CDK's deploy-time handlers: bucket notifications, the default security group, the bucket's CORS rule
      if (id.startsWith('BucketNotificationsHandler') || id.startsWith('CustomVpcRestrictDefaultSG') || id.startsWith('AWS679f53fac002430cb0da5b7982bd2287')) continue;
      expect(role.Properties.ManagedPolicyArns, id).toBeUndefined();
    }
  });
});

describe('cdk-nag (AWS Solutions)', () => {
  for (const [name, get] of [['defaults', () => base], ['every knob turned', () => tuned]] as const) {
    it(`passes with ${name}; every acknowledgment silences a real finding and gives a reason`, () => {
      const audit = auditNag(get().stack);
      expect(audit.unacknowledged).toEqual([]);
      expect(audit.success).toBe(true);
      expect(audit.findings.length).toBeGreaterThan(0);
      expect(audit.unused).toEqual([]);
      for (const a of audit.acknowledgments) expect(a.reason.length, `${a.path} ${a.id}`).toBeGreaterThan(40);
    });
  }
});
