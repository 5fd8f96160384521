import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { IConstruct } from 'constructs';

/** Which key prefixes (each ending in "/") a role may read, write and delete. */
export interface PrefixAccess {
  read?: readonly string[];
  write?: readonly string[];
  delete?: readonly string[];
}

/**
 * Object access by key prefix with exact actions (s3:GetObject, s3:PutObject, s3:DeleteObject), not
 * the `s3:GetObject*`/`s3:List*` families the L2 grants add. s3:ListBucket on the bucket comes with
 * any read: without it S3 answers a missing key with 403 instead of 404, and the stores tell
 * "absent" from "failed" by that 404.
 *
 * The one wildcard left is the key suffix (`prefix/*`), which is what a prefix grant is; it is
 * acknowledged for cdk-nag (AwsSolutions-IAM5) on `owner`, one finding per prefix, with `why`.
 */
export function grantPrefixes(grantee: iam.IGrantable, owner: IConstruct, bucket: s3.IBucket, access: PrefixAccess, why: string): void {
  const objects = (prefixes: readonly string[] | undefined) => (prefixes ?? []).map((p) => bucket.arnForObjects(`${p}*`));
  const statements: [string, string[]][] = [
    ['s3:GetObject', objects(access.read)],
    ['s3:PutObject', objects(access.write)],
    ['s3:DeleteObject', objects(access.delete)],
  ];
  for (const [action, resources] of statements) {
    if (resources.length > 0) grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: [action], resources }));
  }
  if ((access.read ?? []).length > 0) grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));

  const prefixes = new Set([...(access.read ?? []), ...(access.write ?? []), ...(access.delete ?? [])]);
  for (const prefix of prefixes) {
    Validations.of(owner).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagArn(bucket)}/${prefix}*]`,
      reason: `Objects under ${prefix} only (${why}); object keys are generated per prediction, so the grant is a key prefix.`,
    });
  }
}

/** How cdk-nag prints the bucket's ARN in a finding: `<LogicalId.Arn>` for a bucket of this stack, the literal ARN otherwise. */
export function nagArn(bucket: s3.IBucket): string {
  const cfn = bucket.node.defaultChild;
  if (cfn instanceof s3.CfnBucket) return `<${Stack.of(bucket).getLogicalId(cfn)}.Arn>`;
  return `arn:<AWS::Partition>:s3:::${bucket.bucketName}`;
}
