import { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './s3-settings.ts';

export { awsKeysFromEnv, s3SettingsFromEnv, s3SettingsToEnv, type S3Settings } from './s3-settings.ts';

/**
 * An S3 client for the settings. A custom endpoint means a local server: path-style addressing
 * (no bucket subdomains on 127.0.0.1), and checksums only when an operation requires them, because
 * s3rver stores the SDK's default aws-chunked checksum framing as part of the object.
 */
export function createS3Client(s: S3Settings): S3Client {
  const local = s.endpoint !== undefined;
  return new S3Client({
    region: s.region,
    endpoint: s.endpoint,
    credentials: s.credentials,
    forcePathStyle: local,
    ...(local ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
  });
}
