import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { KEYS } from './config.ts';
import type { AnoleSettings } from './settings.ts';

/**
 * The one private bucket (inputs, uploads, jobs, status records, event logs, outputs, the model bundle)
 * and the bucket its access logs go to. Everything leaves the data bucket through presigned URLs or a
 * role; TLS is required; objects are encrypted with S3's own keys (no KMS key to pay for while idle).
 * Lifecycle rules keep storage (the only idle cost) from growing without bound.
 */
export class Storage extends Construct {
  readonly bucket: s3.Bucket;
  readonly logBucket: s3.Bucket;

  constructor(scope: Construct, id: string, settings: AnoleSettings) {
    super(scope, id);
    this.logBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-logs', expiration: Duration.days(90) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const outputs = Duration.days(settings.outputsExpireDays);
    const uploads = Duration.days(settings.uploadsExpireDays);
    this.bucket = new s3.Bucket(this, 'Data', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.logBucket,
      serverAccessLogsPrefix: 'data/',
      // Object-created events go to EventBridge: requests/ starts jobs, status.json writes announce completions.
      eventBridgeEnabled: true,
      // CORS (browsers PUT uploads and GET outputs with presigned URLs) is set at deploy time for the API's
      // origin only (bucket-cors.ts): the Function URL depends on the bucket, so the bucket cannot name it.
      lifecycleRules: [
        { id: 'outputs', prefix: KEYS.outputs, expiration: outputs },
        { id: 'predictions', prefix: KEYS.predictions, expiration: outputs },
        { id: 'jobs', prefix: KEYS.jobs, expiration: outputs },
        { id: 'inputs', prefix: KEYS.inputs, expiration: outputs },
        { id: 'owners', prefix: KEYS.owners, expiration: outputs },
        { id: 'uploads', prefix: KEYS.uploads, expiration: uploads },
        { id: 'requests', prefix: KEYS.requests, expiration: uploads },
        // Idempotency records live 24 h (functions/api/deps.ts); a day more covers the last writes.
        { id: 'idempotency', prefix: KEYS.idempotency, expiration: Duration.days(2) },
        { id: 'abort-incomplete-multipart', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // eventBridgeEnabled is applied at deploy by CDK's bucket-notifications custom resource (a
    // Lambda that runs once per deployment, in the stack's scope).
    const notificationsHandler = Stack.of(this).node.tryFindChild(BUCKET_NOTIFICATIONS_HANDLER);
    if (notificationsHandler) {
      Validations.of(notificationsHandler).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: "CDK's own bucket-notifications handler: it runs only during deployments, to switch on EventBridge notifications; its role is not ours to shape.",
      });
    }
  }
}

/** The id CDK gives its singleton bucket-notifications handler (aws-s3/lib/notifications-resource). */
const BUCKET_NOTIFICATIONS_HANDLER = 'BucketNotificationsHandler050a0587b7544547bf325f094a3db834';
