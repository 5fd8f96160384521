import { SQSClient } from '@aws-sdk/client-sqs';
import type { QueueSettings } from './sqs-settings.ts';

export { queueSettingsFromEnv, queueSettingsToEnv, type QueueSettings } from './sqs-settings.ts';

export function createSqsClient(s: QueueSettings): SQSClient {
  return new SQSClient({ region: s.region, endpoint: s.endpoint, credentials: s.credentials });
}
