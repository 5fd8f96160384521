import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { CONTAINER } from './config.ts';
import type { ModelLocation } from './model-location.ts';
import type { Network } from './network.ts';
import type { AnoleSettings } from './settings.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The AWS CLI image the instances and the model-sync container run (pinned: the same bytes every boot). */
export const AWS_CLI_IMAGE = 'public.ecr.aws/aws-cli/aws-cli:2.27.0';

/** The launch lifecycle hook that holds a warm-pool instance until its prefetch is done. */
export const WARM_POOL_HOOK = 'anole-warm-pool-ready';

export interface GpuCapacityProps {
  network: Network;
  settings: AnoleSettings;
  model: ModelLocation;
  /** The worker image, pre-pulled into warm-pool instances. */
  workerImage: ecrAssets.DockerImageAsset;
}

/**
 * GPU instances that exist only while there is work: an ECS cluster whose capacity provider is an
 * Auto Scaling group of GPU instances (min 0). ECS cluster auto scaling launches an instance when a
 * worker task cannot be placed and, with managed termination protection, removes it only once its
 * task is gone. An optional warm pool keeps stopped, pre-filled instances (EBS cost only) so a start
 * skips the EC2 launch, the image pull and the model download.
 */
export class GpuCapacity extends Construct {
  readonly cluster: ecs.Cluster;
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  readonly capacityProvider: ecs.AsgCapacityProvider;
  readonly instanceRole: iam.Role;

  constructor(scope: Construct, id: string, props: GpuCapacityProps) {
    super(scope, id);
    const { network, settings } = props;
    const warmPool = settings.warmPoolSize > 0;

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: network.vpc,
      // Container Insights publishes only while instances and tasks exist, so it costs nothing idle.
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    // The ECS agent's permissions are added by the cluster when the capacity provider joins it
    // (scoped to this cluster where ECS allows); tasks pull images with their execution role.
    this.instanceRole = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'Anole GPU instances: the ECS agent (registration, state, logs)',
    });
    Validations.of(this.instanceRole).acknowledge({
      id: 'AwsSolutions-IAM5[Action::ecs:Submit*]',
      reason: "The ECS agent's state reports (SubmitTaskStateChange, SubmitContainerStateChange, SubmitAttachmentStateChanges), on this cluster only: the statement the cluster adds for its container instances.",
    });
    Validations.of(this.instanceRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Actions without resource-level permissions: ecs:DiscoverPollEndpoint, ecr:GetAuthorizationToken, logs for the agent' +
        ' (and autoscaling:DescribeAutoScalingInstances for the warm-pool boot script); ecs:Poll and ecs:StartTelemetrySession are conditioned on this cluster.',
    });

    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      `mkdir -p ${CONTAINER.hostModelDir}`,
      'cat >> /etc/ecs/ecs.config <<EOF',
      'ECS_ENABLE_GPU_SUPPORT=true',
      // A stopped-and-restarted (warm pool) instance already has the image: do not pull it again.
      'ECS_IMAGE_PULL_BEHAVIOR=prefer-cached',
      ...(warmPool ? ['ECS_WARM_POOLS_CHECK=true'] : []),
      'EOF',
    );

    const launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      // The ECS-optimized Amazon Linux 2023 GPU AMI (NVIDIA driver + container toolkit), resolved from
      // its public SSM parameter at deploy time: no lookup at synth.
      machineImage: ecs.EcsOptimizedImage.amazonLinux2023(ecs.AmiHardwareType.GPU),
      userData,
      role: this.instanceRole,
      securityGroup: network.instanceSecurityGroup,
      requireImdsv2: true,
      // Hop limit 1: containers on the bridge network cannot reach the instance role's credentials.
      httpPutResponseHopLimit: 1,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(settings.volumeGiB, {
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            encrypted: true,
            deleteOnTermination: true,
            ...gp3Performance(settings.volumeThroughputMiBps),
          }),
        },
      ],
    });

    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Instances', {
      // Named, so the warm-pool policy can name it without referring to the group (which would be a cycle).
      autoScalingGroupName: `${Stack.of(this).stackName}-gpu`,
      vpc: network.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      minCapacity: 0,
      maxCapacity: settings.maxInstances,
      // The types in order of preference; the next is tried when one has no capacity in the zone.
      mixedInstancesPolicy: {
        launchTemplate,
        launchTemplateOverrides: settings.instanceTypes.map((t) => ({ instanceType: new ec2.InstanceType(t) })),
        instancesDistribution: {
          onDemandAllocationStrategy: autoscaling.OnDemandAllocationStrategy.PRIORITIZED,
          onDemandBaseCapacity: 0,
          onDemandPercentageAboveBaseCapacity: 100,
        },
      },
      healthChecks: autoscaling.HealthChecks.ec2(),
    });
    Validations.of(this.autoScalingGroup).acknowledge({
      id: 'AwsSolutions-EC26',
      reason: 'The root volume is encrypted in the launch template (Encrypted: true); the rule does not look through mixed-instances launch templates.',
    });
    Validations.of(this.autoScalingGroup).acknowledge({
      id: 'AwsSolutions-AS3',
      reason: 'Scaling is driven by ECS cluster auto scaling from the queue; the queue alarms (alarms.ts) are the notifications that matter, instance launches are routine.',
    });

    if (warmPool) this.addWarmPool(props);

    this.capacityProvider = new ecs.AsgCapacityProvider(this, 'CapacityProvider', {
      autoScalingGroup: this.autoScalingGroup,
      enableManagedScaling: true,
      enableManagedTerminationProtection: true,
      enableManagedDraining: true,
      targetCapacityPercent: 100,
      machineImageType: ecs.MachineImageType.AMAZON_LINUX_2,
    });
    this.cluster.addAsgCapacityProvider(this.capacityProvider);
  }

  /**
   * A warm pool of stopped instances, each filled once (model bundle + worker image) before it stops.
   * A launch lifecycle hook holds the instance until the boot script says it is ready; the script
   * runs at every boot (a start from the pool does not re-run user data).
   */
  private addWarmPool({ settings, model, workerImage }: GpuCapacityProps): void {
    const region = Stack.of(this).region;
    this.autoScalingGroup.addWarmPool({
      minSize: settings.warmPoolSize,
      maxGroupPreparedCapacity: settings.warmPoolSize,
      poolState: autoscaling.PoolState.STOPPED,
      // ECS does not support returning instances to the pool on scale-in.
      reuseOnScaleIn: false,
    });
    this.autoScalingGroup.addLifecycleHook('WarmPoolReady', {
      lifecycleHookName: WARM_POOL_HOOK,
      lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_LAUNCHING,
      // A failed script must not strand capacity: the launch continues after this long.
      heartbeatTimeout: Duration.minutes(20),
      defaultResult: autoscaling.DefaultResult.CONTINUE,
    });

    const script = fs
      .readFileSync(path.join(here, 'warm-pool-boot.sh'), 'utf8')
      .replace('__REGION__', region)
      .replace('__HOOK__', WARM_POOL_HOOK)
      .replace('__MODEL_URI__', model.uri)
      .replace('__MODEL_DIR__', CONTAINER.hostModelDir)
      .replace('__WORKER_IMAGE__', workerImage.imageUri)
      .replace('__AWS_CLI_IMAGE__', AWS_CLI_IMAGE);
    this.autoScalingGroup.addUserData(
      "cat > /usr/local/bin/anole-warm-pool.sh <<'ANOLE_EOF'",
      script.trimEnd(),
      'ANOLE_EOF',
      'chmod +x /usr/local/bin/anole-warm-pool.sh',
      "cat > /etc/systemd/system/anole-warm-pool.service <<'ANOLE_EOF'",
      '[Unit]',
      'Description=Anole warm pool: prefetch the model and image, then release the launch lifecycle hook',
      'Wants=network-online.target',
      'After=network-online.target docker.service',
      'Requires=docker.service',
      '[Service]',
      'Type=oneshot',
      'ExecStart=/usr/local/bin/anole-warm-pool.sh',
      '[Install]',
      'WantedBy=multi-user.target',
      'ANOLE_EOF',
      'systemctl daemon-reload',
      'systemctl enable anole-warm-pool.service',
      'systemctl start --no-block anole-warm-pool.service',
    );

    // What the boot script does with the instance role: read the model, finish its own lifecycle action.
    model.grantRead(this.instanceRole, this.instanceRole);
    workerImage.repository.grantPull(this.instanceRole);
    // An Auto Scaling group's ARN holds a UUID that CloudFormation does not return: match it with *.
    const groupName = (this.autoScalingGroup.node.defaultChild as autoscaling.CfnAutoScalingGroup).autoScalingGroupName!;
    this.instanceRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['autoscaling:CompleteLifecycleAction'],
        resources: [
          Stack.of(this).formatArn({
            service: 'autoscaling',
            resource: 'autoScalingGroup',
            resourceName: `*:autoScalingGroupName/${groupName}`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    Validations.of(this.instanceRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:autoScalingGroup:*:autoScalingGroupName/${groupName}]`,
      reason: "CompleteLifecycleAction on this group only, named exactly; the * stands for the UUID inside the group's ARN.",
    });
    this.instanceRole.addToPolicy(new iam.PolicyStatement({ actions: ['autoscaling:DescribeAutoScalingInstances'], resources: ['*'] }));
  }
}

/**
 * A gp3 volume's throughput, with the IOPS it needs: gp3 allows at most 0.25 MiB/s per provisioned
 * IOPS, and includes 3000 IOPS and 125 MiB/s. Nothing is set (nothing billed) at the baseline.
 */
export function gp3Performance(throughputMiBps: number): { throughput?: number; iops?: number } {
  if (throughputMiBps <= 125) return {};
  return { throughput: throughputMiBps, iops: Math.max(3000, Math.ceil(throughputMiBps / 0.25)) };
}
