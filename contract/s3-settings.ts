// The S3 settings alone, without the SDK: a process can read and check its environment before it
// pays for importing @aws-sdk/client-s3 (the worker starts loading its model in between).

/** Where the service's one private bucket is and how to reach it. */
export interface S3Settings {
  bucket: string;
  region: string;
  /** A non-AWS endpoint (the local stack); unset in AWS. */
  endpoint?: string;
  /** Explicit keys (the local stack); unset in AWS, where the SDK's default chain finds the role's. */
  credentials?: AwsKeys;
}

export interface AwsKeys {
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * Settings from the environment: ANOLE_S3_BUCKET (default "anole"), AWS_REGION (default us-east-1),
 * ANOLE_S3_ENDPOINT, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when both are set.
 */
export function s3SettingsFromEnv(env: NodeJS.ProcessEnv = process.env): S3Settings {
  return {
    bucket: env.ANOLE_S3_BUCKET || 'anole',
    region: env.AWS_REGION || 'us-east-1',
    endpoint: env.ANOLE_S3_ENDPOINT || undefined,
    credentials: awsKeysFromEnv(env),
  };
}

export function awsKeysFromEnv(env: NodeJS.ProcessEnv): AwsKeys | undefined {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = env;
  return accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined;
}

/** The inverse of awsKeysFromEnv: no variables without keys. */
export function awsKeysToEnv(keys: AwsKeys | undefined): Record<string, string> {
  return keys ? { AWS_ACCESS_KEY_ID: keys.accessKeyId, AWS_SECRET_ACCESS_KEY: keys.secretAccessKey } : {};
}

/** The settings as environment variables, for a child process (the inverse of s3SettingsFromEnv). */
export function s3SettingsToEnv(s: S3Settings): Record<string, string> {
  return {
    ANOLE_S3_BUCKET: s.bucket,
    AWS_REGION: s.region,
    ...(s.endpoint ? { ANOLE_S3_ENDPOINT: s.endpoint } : {}),
    ...awsKeysToEnv(s.credentials),
  };
}
