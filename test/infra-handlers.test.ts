import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsJobQueue } from '../contract/job-queue.ts';
import { PredictionStore } from '../contract/prediction-store.ts';
import { createS3Client } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import { createSqsClient } from '../contract/sqs.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { ENV, EVENTS, KEYS } from '../infra/config.ts';
import { announceCompletion, type CompletionDeps } from '../infra/handlers/completion-events.ts';
import type { ServiceEvent } from '../infra/handlers/event-publisher.ts';
import { API_MODEL_FILES, modelFilesDir } from '../infra/handlers/model-files.ts';
import { intakeDepsFromEnv, takeRequest, type IntakeDeps, type PredictionRequestedEvent } from '../infra/handlers/request-intake.ts';
import type { S3ObjectCreatedEvent } from '../infra/handlers/s3-object-event.ts';
import { installLambdaGlobals, invokeFunctionUrl, type StreamingHandler } from './lambda-runtime.ts';

/**
 * The Lambda code of the event-driven side against the real local stack (s3rver behind the
 * conditional-write front, local-aws-sqs) and the fixture model's tokenizer, read from S3 as on AWS.
 * EventBridge cannot run here: what the handlers publish is collected at the PutEvents boundary.
 */
const FIXTURE_MODEL = 'test/fixtures/anole-tiny';
const MODEL_URI = `s3://anole/${KEYS.models}`;
const API_URL = 'https://abc.lambda-url.us-east-1.on.aws/';

let stack: LocalStack;
let store: S3BlobStore;
let predictions: PredictionStore;
let queue: SqsJobQueue;
let published: ServiceEvent[];
let intake: IntakeDeps;

const made: string[] = [];
const tmp = (prefix: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
};

function objectCreated(key: string, etag?: string): S3ObjectCreatedEvent {
  return { id: `evt-${key}`, source: 'aws.s3', 'detail-type': 'Object Created', detail: { bucket: { name: 'anole' }, object: { key, ...(etag ? { etag } : {}) } } };
}

async function drainQueue(): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const got = await queue.receive(10, 0, { visibilitySeconds: 60 });
    if (got.length === 0) return ids;
    ids.push(...got.map((m) => m.job!.predictionId));
  }
}

beforeAll(async () => {
  stack = await startLocalStack();
  store = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
  predictions = new PredictionStore(store);
  queue = new SqsJobQueue(createSqsClient(stack.queue), stack.queue.queueUrl);
  // the model bundle's small files in the bucket, where the stack puts the model by default
  for (const name of API_MODEL_FILES) {
    if (name === 'processor_config.json') continue; // an optional file the bundle may lack
    await store.put(KEYS.models + name, fs.readFileSync(path.join(FIXTURE_MODEL, name)), 'application/json');
  }
  published = [];
  const env = { ...stack.env, [ENV.model]: MODEL_URI, [ENV.eventBus]: 'anole-bus', [ENV.apiUrl]: API_URL };
  intake = { ...(await intakeDepsFromEnv(env, { modelCacheDir: tmp('anole-model-') })), publish: async (events) => void published.push(...events) };
}, 60_000);

afterAll(async () => {
  queue?.sqs.destroy();
  store?.s3.destroy();
  await stack?.stop();
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

describe('model files for the Lambdas', () => {
  it('copies the config and tokenizer files from the s3:// bundle once, skipping optional ones it lacks; a directory passes through', async () => {
    const dir = tmp('anole-model-');
    expect(await modelFilesDir(MODEL_URI, store.s3, dir)).toBe(dir);
    for (const name of ['config.json', 'tokenizer.json']) {
      expect(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(path.join(FIXTURE_MODEL, name))), name).toBe(true);
    }
    expect(fs.existsSync(path.join(dir, 'processor_config.json'))).toBe(false);
    expect(fs.readdirSync(dir).sort()).toEqual(API_MODEL_FILES.filter((f) => f !== 'processor_config.json').sort());
    expect(await modelFilesDir(FIXTURE_MODEL, store.s3, dir)).toBe(FIXTURE_MODEL);
  });

  it('a bundle without config.json is refused, naming the file', async () => {
    await expect(modelFilesDir('s3://anole/no-such-model/', store.s3, tmp('anole-model-'))).rejects.toThrow('the model bundle s3://anole/no-such-model/ has no config.json');
  });
});

describe('request intake', () => {
  it('a JSON request put under requests/ becomes a queued prediction, once, and "Prediction Accepted" names both', async () => {
    const key = `${KEYS.requests}batch-1/lighthouse.json`;
    await store.put(key, JSON.stringify({ input: { prompt: 'A lighthouse at dusk', mode: 'text', max_new_tokens: 4 } }), 'application/json');
    const etag = (await store.head(key))!.etag.replace(/"/g, '');
    published.length = 0;

    const first = await takeRequest(objectCreated(key, etag), intake);
    expect(first.outcome).toBe('accepted');
    const id = first.outcome === 'accepted' ? first.prediction.id : '';
    const record = await predictions.get(id);
    expect(record?.value).toMatchObject({ id, status: 'starting', owner: 'local', input: { prompt: 'A lighthouse at dusk', mode: 'text' } });
    expect(published).toEqual([
      {
        detailType: EVENTS.accepted,
        detail: {
          outcome: 'accepted',
          request: { bucket: 'anole', key },
          prediction: { id, status: 'starting', urls: expect.objectContaining({ get: `${API_URL}v1/predictions/${id}` }) },
        },
      },
    ]);
    expect(await drainQueue()).toEqual([id]);

    // S3 and EventBridge deliver at least once: the same object version makes no second prediction
    const again = await takeRequest(objectCreated(key, etag), intake);
    expect(again).toMatchObject({ outcome: 'accepted', prediction: { id } });
    expect(await drainQueue()).toEqual([]);
  });

  it('finds objects whose key the event URL-encodes ("my job.json" arrives as "my+job.json")', async () => {
    await store.put(`${KEYS.requests}my job.json`, JSON.stringify({ input: { prompt: 'hello' } }), 'application/json');
    const outcome = await takeRequest(objectCreated(`${KEYS.requests}my+job.json`), intake);
    expect(outcome).toMatchObject({ outcome: 'accepted', request: { key: `${KEYS.requests}my job.json` } });
    await drainQueue();
  });

  it('a "Prediction Requested" event becomes a prediction; its idempotency_key makes replays one prediction', async () => {
    const event = (id: string): PredictionRequestedEvent => ({
      id,
      source: 'my.app',
      'detail-type': EVENTS.requested,
      detail: { request: { input: { prompt: 'Describe a cat', max_new_tokens: 3 } }, idempotency_key: 'order-42', cancel_after: '10m' },
    });
    const a = await takeRequest(event('e-1'), intake);
    const b = await takeRequest(event('e-2'), intake);
    expect(a).toMatchObject({ outcome: 'accepted', request: { event_id: 'e-1', source: 'my.app' } });
    expect(b.outcome === 'accepted' && a.outcome === 'accepted' && b.prediction.id === a.prediction.id).toBe(true);
    const id = a.outcome === 'accepted' ? a.prediction.id : '';
    expect((await predictions.get(id))?.value.deadline).not.toBeNull();
    expect(await drainQueue()).toEqual([id]);
  });

  it('bad requests are rejected with the API\'s own error and a "Prediction Rejected" event; nothing is queued', async () => {
    published.length = 0;
    await store.put(`${KEYS.requests}broken.json`, '{"input": ', 'application/json');
    const broken = await takeRequest(objectCreated(`${KEYS.requests}broken.json`), intake);
    expect(broken).toMatchObject({ outcome: 'rejected', http_status: 400, error: { code: 'invalid_json' } });

    const unknownField = await takeRequest({ id: 'e-3', source: 'my.app', 'detail-type': EVENTS.requested, detail: { request: { input: { prompt: 'x' }, colour: 'red' } } }, intake);
    expect(unknownField.outcome).toBe('rejected');
    expect(unknownField.outcome === 'rejected' && unknownField.http_status >= 400 && unknownField.http_status < 500).toBe(true);
    expect(JSON.stringify(unknownField)).toContain('colour');

    const noRequest = await takeRequest({ id: 'e-4', source: 'my.app', 'detail-type': EVENTS.requested, detail: {} as never }, intake);
    expect(noRequest).toMatchObject({ outcome: 'rejected', http_status: 400, request: { event_id: 'e-4' } });

    expect(published.map((e) => e.detailType)).toEqual([EVENTS.rejected, EVENTS.rejected, EVENTS.rejected]);
    expect(published[0].detail).toMatchObject({ request: { bucket: 'anole', key: `${KEYS.requests}broken.json` } });
    expect(await drainQueue()).toEqual([]);
  });

  it('ignores objects outside requests/ and objects already gone', async () => {
    published.length = 0;
    expect(await takeRequest(objectCreated('uploads/x.json'), intake)).toMatchObject({ outcome: 'ignored' });
    expect(await takeRequest(objectCreated(`${KEYS.requests}deleted.json`), intake)).toMatchObject({ outcome: 'ignored' });
    expect(published).toEqual([]);
  });
});

describe('completion events', () => {
  it('publishes "Prediction Completed" for the write that made the record terminal, not for earlier or other writes', async () => {
    const sent: ServiceEvent[] = [];
    const deps: CompletionDeps = { predictions, bucket: 'anole', publish: async (events) => void sent.push(...events) };
    const accepted = await takeRequest(
      { id: 'e-5', source: 'my.app', 'detail-type': EVENTS.requested, detail: { request: { input: { prompt: 'Draw a boat', mode: 'image' } } } },
      intake,
    );
    const id = accepted.outcome === 'accepted' ? accepted.prediction.id : '';
    await drainQueue();
    const key = `predictions/${id}/status.json`;
    const bare = (etag: string) => etag.replace(/"/g, '');

    const created = await predictions.get(id);
    expect(await announceCompletion(objectCreated(key, bare(created!.etag)), deps)).toBe('not-terminal');

    const processing = await predictions.update(id, (r) => ({ ...r, status: 'processing', started_at: new Date().toISOString() }));
    const output = [[{ type: 'image' as const, key: `outputs/${id}/image-0-0.png`, width: 512, height: 512 }]];
    const done = await predictions.update(id, (r) => ({ ...r, status: 'succeeded', output, completed_at: new Date().toISOString(), metrics: { predict_time: 1.5 } }));
    // the event of the earlier write arrives after the record moved on: skipped (the later write has its own event)
    expect(await announceCompletion(objectCreated(key, bare(processing.etag)), deps)).toBe('superseded');
    expect(sent).toEqual([]);

    expect(await announceCompletion(objectCreated(key, bare(done.etag)), deps)).toBe('published');
    expect(sent).toEqual([
      {
        detailType: EVENTS.completed,
        detail: expect.objectContaining({ id, owner: 'local', status: 'succeeded', output, error: null, metrics: { predict_time: 1.5 }, bucket: 'anole' }),
      },
    ]);
    expect(sent[0].detail).not.toHaveProperty('input');

    expect(await announceCompletion(objectCreated(`predictions/${id}/events/000000.json`), deps)).toBe('not-a-status');
    expect(await announceCompletion(objectCreated('predictions/nosuchid/status.json'), deps)).toBe('gone');
  });
});

describe('the API Lambda entry', () => {
  const saved = { ...process.env };
  let uninstall = () => {};
  afterAll(() => {
    process.env = saved;
    uninstall();
  });

  it('fetches the model files from the s3:// URI into /tmp, then serves functions/lambda.ts', async () => {
    const tmpdir = tmp('anole-lambda-tmp-');
    Object.assign(process.env, stack.env, { [ENV.model]: MODEL_URI, TMPDIR: tmpdir });
    uninstall = installLambdaGlobals();
    const { handler } = (await import('../infra/handlers/api-entry.ts')) as unknown as { handler: StreamingHandler };
    expect(process.env[ENV.model]).toBe(path.join(tmpdir, 'anole-model'));
    expect(fs.existsSync(path.join(tmpdir, 'anole-model', 'tokenizer.json'))).toBe(true);

    const res = await invokeFunctionUrl(handler, 'GET', '/openapi.json');
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body).paths['/v1/predictions']).toBeDefined();
  });
});
