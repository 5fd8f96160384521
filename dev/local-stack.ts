/// <reference path="./s3rver.d.ts" />
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { createRequestHandler } from 'local-aws-sqs';
import S3rver from 's3rver';
import { s3SettingsToEnv, type S3Settings } from '../contract/s3.ts';
import { createSqsClient, queueSettingsToEnv, type QueueSettings } from '../contract/sqs.ts';
import { startConditionalS3Front, type S3Front } from './conditional-s3-front.ts';
import { fixVisibilityReceiveCount } from './sqs-receive-count-fix.ts';

export interface LocalStackOptions {
  /** Where s3rver keeps objects (default: a fresh temporary directory, removed by stop()). */
  dir?: string;
  bucket?: string;
  queueName?: string;
  /** The S3 front's port (default: any free one); s3rver itself always takes a free one behind it. */
  s3Port?: number;
  sqsPort?: number;
  /** The queue's default visibility timeout: how long a delivery stays hidden before it comes back. */
  visibilityTimeoutSeconds?: number;
  /** Deliveries before a message moves to the dead-letter queue. */
  maxReceiveCount?: number;
}

export interface LocalStack {
  s3: S3Settings;
  queue: QueueSettings;
  dlqUrl: string;
  /** The same settings as environment variables (s3SettingsFromEnv / queueSettingsFromEnv read them), for child processes. */
  env: Record<string, string>;
  /** The conditional-write front every S3 client talks to: stop() and start() it to play an S3 outage. */
  s3Front: S3Front;
  stop(): Promise<void>;
}

const LOCAL_KEYS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }; // s3rver's built-in account
const REGION = 'us-east-1';

/**
 * AWS on loopback for development and tests: s3rver behind a front that enforces conditional
 * writes (see conditional-s3-front.ts), local-aws-sqs with the job queue and its dead-letter queue
 * (its receive count fixed: sqs-receive-count-fix.ts).
 */
export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const bucket = opts.bucket ?? 'anole';
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'anole-s3-')));

  const s3rver = new S3rver({ address: '127.0.0.1', port: 0, silent: process.env.S3RVER_LOG !== '1', directory: dir, configureBuckets: [{ name: bucket }] });
  const s3rverAddress = await s3rver.run();
  const s3Front = await startConditionalS3Front({ upstream: `http://127.0.0.1:${s3rverAddress.port}`, port: opts.s3Port });

  // createSqsServer, unrolled to reach the queues (see sqs-receive-count-fix.ts)
  const { service, requestHandler } = createRequestHandler({ port: 0, hostname: '127.0.0.1', emulateQueueCreationLifecycle: false });
  const sqsServer = http.createServer(requestHandler);
  await new Promise<void>((resolve) => sqsServer.listen(opts.sqsPort ?? 0, '127.0.0.1', resolve));
  service.PORT = (sqsServer.address() as AddressInfo).port;
  const sqsEndpoint = `http://127.0.0.1:${service.PORT}`;
  const queueName = opts.queueName ?? 'anole-jobs';
  const sqs = createSqsClient({ queueUrl: '', region: REGION, endpoint: sqsEndpoint, credentials: LOCAL_KEYS });
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${queueName}-dlq` }));
  const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  const main = await sqs.send(
    new CreateQueueCommand({
      QueueName: queueName,
      Attributes: {
        VisibilityTimeout: String(opts.visibilityTimeoutSeconds ?? 30),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: opts.maxReceiveCount ?? 5 }),
      },
    }),
  );
  fixVisibilityReceiveCount(service.Queues.find((q) => q.QueueName === queueName)!);
  sqs.destroy();

  const s3: S3Settings = { bucket, region: REGION, endpoint: s3Front.endpoint, credentials: LOCAL_KEYS };
  const queue: QueueSettings = { queueUrl: main.QueueUrl!, region: REGION, endpoint: sqsEndpoint, credentials: LOCAL_KEYS };
  return {
    s3,
    queue,
    dlqUrl: dlq.QueueUrl!,
    env: { ...s3SettingsToEnv(s3), ...queueSettingsToEnv(queue) },
    s3Front,
    async stop() {
      await s3Front.stop();
      await s3rver.close();
      await new Promise<void>((resolve) => {
        sqsServer.close(() => resolve());
        sqsServer.closeAllConnections();
      });
      if (ownDir) await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
