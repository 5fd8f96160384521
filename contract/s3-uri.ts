/** An `s3://bucket/prefix/` location: where a model bundle lives, read by the CLI, the sidecar and the deployment. */
export interface S3Location {
  bucket: string;
  /** Ends in "/" (or is empty for a whole bucket). */
  prefix: string;
}

export class S3UriError extends Error {}

export function isS3Uri(location: string): boolean {
  return location.startsWith('s3://');
}

/** `s3://bucket/some/prefix` → bucket and a prefix that ends in "/" (or is empty for a whole bucket). */
export function parseS3Uri(uri: string, what = 'S3 URI'): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri);
  if (!m) throw new S3UriError(`${what} must look like s3://bucket/prefix/, got "${uri}"`);
  const prefix = (m[2] ?? '').replace(/\/*$/, '');
  return { bucket: m[1], prefix: prefix ? `${prefix}/` : '' };
}

export function formatS3Uri({ bucket, prefix }: S3Location, key = ''): string {
  return `s3://${bucket}/${prefix}${key}`;
}
