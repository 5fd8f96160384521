import type * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, type IConstruct } from 'constructs';
import { grantPrefixes } from './bucket-access.ts';
import { KEYS } from './config.ts';
import { parseS3Uri } from './settings.ts';

/**
 * Where the model bundle lives in S3: the `anole:modelUri` setting, or `models/anole/` in the stack's
 * own bucket. The bundle is read at start (never baked into the image), so a new model is an
 * `aws s3 sync` and a restart, not a new image.
 */
export class ModelLocation extends Construct {
  readonly bucket: s3.IBucket;
  /** Ends in "/" (or is empty: the whole bucket). */
  readonly prefix: string;
  /** `s3://bucket/prefix/` (a token when the bucket is the stack's own). */
  readonly uri: string;

  constructor(scope: Construct, id: string, props: { modelUri?: string; dataBucket: s3.IBucket }) {
    super(scope, id);
    if (props.modelUri) {
      const { bucket, prefix } = parseS3Uri(props.modelUri);
      this.bucket = s3.Bucket.fromBucketName(this, 'Bucket', bucket);
      this.prefix = prefix;
    } else {
      this.bucket = props.dataBucket;
      this.prefix = KEYS.models;
    }
    this.uri = `s3://${this.bucket.bucketName}/${this.prefix}`;
  }

  /** List the prefix and read its objects (what `aws s3 sync` and a file-by-file download need). */
  grantRead(grantee: iam.IGrantable, owner: IConstruct): void {
    grantPrefixes(grantee, owner, this.bucket, { read: [this.prefix] }, 'the model bundle, read at start');
  }
}
