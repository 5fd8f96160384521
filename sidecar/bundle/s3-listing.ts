import { ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import type { S3Location } from '../../contract/s3-uri.ts';

export interface ListedObject {
  key: string;
  /** The key less the prefix. */
  name: string;
  size: number;
  /** Quoted, as S3 lists it. */
  etag: string;
}

/**
 * Every object under a prefix, in key order. ListObjects v1 with markers: v2's continuation tokens
 * break s3rver on Node ≥ 17 (see S3BlobStore.list), and a marker works the same on AWS.
 */
export async function listObjects(s3: S3Client, at: S3Location): Promise<ListedObject[]> {
  const objects: ListedObject[] = [];
  let marker: string | undefined;
  for (;;) {
    const out = await s3.send(new ListObjectsCommand({ Bucket: at.bucket, Prefix: at.prefix, Marker: marker }));
    for (const o of out.Contents ?? []) objects.push({ key: o.Key!, name: o.Key!.slice(at.prefix.length), size: o.Size ?? 0, etag: o.ETag ?? '' });
    if (!out.IsTruncated || !out.Contents?.length) return objects;
    marker = out.NextMarker ?? out.Contents[out.Contents.length - 1].Key;
  }
}
