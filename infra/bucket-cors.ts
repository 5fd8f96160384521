import { Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';

/** The methods the playground uses on the bucket: presigned PUT uploads, GETs (and HEADs) of outputs and previews. */
export const CORS_METHODS = ['GET', 'PUT', 'HEAD'];

/**
 * The data bucket's CORS rule, for the API's origin only (the playground is served there). The bucket cannot
 * hold the rule itself: the Function URL depends on the function, which depends on the bucket (its name in the
 * environment, its grants), so a rule naming the URL in the bucket would be a cycle. A custom resource puts
 * it once both exist, and again when the URL changes.
 */
export class BucketCors extends Construct {
  /** `https://<id>.lambda-url.<region>.on.aws`: the Function URL without its path. */
  readonly origin: string;

  constructor(scope: Construct, id: string, props: { bucket: s3.IBucket; apiUrl: string; logRetentionDays: number }) {
    super(scope, id);
    this.origin = `https://${Fn.select(2, Fn.split('/', props.apiUrl))}`;
    const put: cr.AwsSdkCall = {
      service: 'S3',
      action: 'putBucketCors',
      parameters: {
        Bucket: props.bucket.bucketName,
        CORSConfiguration: { CORSRules: [{ AllowedOrigins: [this.origin], AllowedMethods: CORS_METHODS, AllowedHeaders: ['*'], MaxAgeSeconds: 3600 }] },
      },
      physicalResourceId: cr.PhysicalResourceId.of('anole-bucket-cors'),
    };
    new cr.AwsCustomResource(this, 'Put', {
      onCreate: put,
      onUpdate: put,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['s3:PutBucketCORS'], resources: [props.bucket.bucketArn] }),
      ]),
      installLatestAwsSdk: false,
      // the handler's log group with the stack's retention (CDK's own default keeps logs for two years)
      logGroup: new logs.LogGroup(this, 'Logs', { retention: props.logRetentionDays, removalPolicy: RemovalPolicy.DESTROY }),
    });
    const handler = Stack.of(this).node.tryFindChild(CUSTOM_RESOURCE_HANDLER);
    if (handler) {
      Validations.of(handler).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: "CDK's own AwsCustomResource handler: it runs only during deployments, to put the bucket's CORS rule; its role is not ours to shape.",
      });
    }
  }
}

/** The id CDK gives its singleton AwsCustomResource handler (custom-resources/lib/aws-custom-resource). */
const CUSTOM_RESOURCE_HANDLER = 'AWS679f53fac002430cb0da5b7982bd2287';
