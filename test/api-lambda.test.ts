import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsJobQueue } from '../contract/job-queue.ts';
import { PredictionStore } from '../contract/prediction-store.ts';
import { createS3Client } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import { createSqsClient } from '../contract/sqs.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { FIXTURE_MODEL } from './api-harness.ts';
import { installLambdaGlobals, invokeFunctionUrl, type StreamingHandler } from './lambda-runtime.ts';

/**
 * functions/lambda.ts as the Lambda runtime drives it (test/lambda-runtime.ts): the handler module
 * is imported with its configuration in the environment (here pointing at the real local S3 and
 * SQS), then invoked with Function URL (payload v2) events and a response stream.
 * test/infra-api-bundle.test.ts does the same with the bundle CDK builds.
 */
let stack: LocalStack;
let handler: StreamingHandler;
let uninstall: () => void;
const saved = { ...process.env };

beforeAll(async () => {
  stack = await startLocalStack();
  Object.assign(process.env, stack.env, { ANOLE_MODEL: FIXTURE_MODEL });
  uninstall = installLambdaGlobals();
  handler = (await import('../functions/lambda.ts')).handler as unknown as StreamingHandler;
});

afterAll(async () => {
  process.env = saved;
  uninstall?.();
  await stack?.stop();
});

const invoke = (method: string, path: string, body?: unknown) => invokeFunctionUrl(handler, method, path, body);

describe('the Lambda handler (Function URL, response streaming)', () => {
  it('answers /healthz', async () => {
    const res = await invoke('GET', '/healthz');
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ status: 'ok' });
  });

  it('creates a prediction in the configured bucket and queue, with URLs on the function URL host', async () => {
    const res = await invoke('POST', '/v1/predictions', { input: { prompt: 'from lambda', max_new_tokens: 4 } });
    expect(res.statusCode).toBe(201);
    const prediction = JSON.parse(res.body);
    expect(prediction.urls.get).toBe(`https://abc.lambda-url.us-east-1.on.aws/v1/predictions/${prediction.id}`);

    const store = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
    const sqs = createSqsClient(stack.queue);
    const [message] = await new SqsJobQueue(sqs, stack.queue.queueUrl).receive(1, 1);
    expect(message.job).toEqual({ predictionId: prediction.id, jobKey: `jobs/${prediction.id}.json` });
    expect((await new PredictionStore(store).get(prediction.id))!.value.status).toBe('starting');
    const job = JSON.parse(new TextDecoder().decode(await store.get(`jobs/${prediction.id}.json`)));
    expect(job.maxNewTokens).toBe(4);
    sqs.destroy();
    store.s3.destroy();
  });

  it('streams an event stream through the response stream', async () => {
    const { id } = JSON.parse((await invoke('POST', '/v1/predictions', { input: { prompt: 'stream me' } })).body);
    const store = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
    const predictions = new PredictionStore(store);
    await predictions.update(id, (r) => ({ ...r, status: 'processing' }));
    await predictions.appendEvent(id, { type: 'text', sequence: 0, delta: 'hi' });
    await predictions.update(id, (r) => ({ ...r, status: 'succeeded' }));
    await predictions.appendEvent(id, { type: 'done', status: 'succeeded' });
    const res = await invoke('GET', `/v1/predictions/${id}/stream`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(res.body).toContain('event: text\ndata: {"sequence":0,"delta":"hi"}\nid: 0\n\n');
    expect(res.body.trim().endsWith('event: done\ndata: {"status":"succeeded"}\nid: 1')).toBe(true);
    store.s3.destroy();
  });

  it('answers bad input with the error shape, not a runtime error', async () => {
    const res = await invoke('POST', '/v1/predictions', { input: { prompt: 'x', n: 99 } });
    expect(res.statusCode).toBe(422);
    expect(JSON.parse(res.body).error.param).toBe('input.n');
  });
});
