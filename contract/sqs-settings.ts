// The queue settings alone, without the SDK (see s3-settings.ts).
import { awsKeysFromEnv, awsKeysToEnv, type AwsKeys } from './s3-settings.ts';

/** Where the job queue is and how to reach it. */
export interface QueueSettings {
  queueUrl: string;
  region: string;
  /** A non-AWS endpoint (the local stack's SQS server); unset in AWS. */
  endpoint?: string;
  credentials?: AwsKeys;
}

/** Settings from the environment: ANOLE_QUEUE_URL (required), AWS_REGION, ANOLE_SQS_ENDPOINT, AWS keys. */
export function queueSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): QueueSettings {
  const queueUrl = env.ANOLE_QUEUE_URL;
  if (!queueUrl) throw new Error('ANOLE_QUEUE_URL is not set: the job queue URL is required');
  return {
    queueUrl,
    region: env.AWS_REGION || 'us-east-1',
    endpoint: env.ANOLE_SQS_ENDPOINT || undefined,
    credentials: awsKeysFromEnv(env),
  };
}

export function queueSettingsToEnv(s: QueueSettings): Record<string, string> {
  return {
    ANOLE_QUEUE_URL: s.queueUrl,
    AWS_REGION: s.region,
    ...(s.endpoint ? { ANOLE_SQS_ENDPOINT: s.endpoint } : {}),
    ...awsKeysToEnv(s.credentials),
  };
}
