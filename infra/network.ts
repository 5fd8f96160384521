import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/**
 * A VPC with public subnets only: the GPU instances reach ECR, SQS, S3 and CloudWatch through the
 * internet gateway, because a NAT gateway or interface endpoints would bill by the hour while nothing
 * runs. Nothing is reachable from outside: the instances' security group has no ingress rule at all.
 * S3 traffic (the model bundle, images) stays on the free gateway endpoint. Flow logs go to the log bucket.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly instanceSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, logBucket: s3.IBucket) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      // An environment-agnostic stack (no lookups at synth) sees two zones.
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 20, mapPublicIpOnLaunch: true }],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      flowLogs: {
        toS3: { destination: ec2.FlowLogDestination.toS3(logBucket, 'vpc-flow-logs/'), trafficType: ec2.FlowLogTrafficType.ALL },
      },
    });
    this.instanceSecurityGroup = new ec2.SecurityGroup(this, 'GpuInstances', {
      vpc: this.vpc,
      description: 'Anole GPU workers: no inbound traffic; outbound to AWS APIs, ECR and webhook receivers',
      allowAllOutbound: true,
    });
  }
}
