import fs from 'node:fs/promises';
import path from 'node:path';
import { bucketOnOrigin, presignOnOrigin } from '../../dev/bucket-on-api-origin.ts';
import { startLocalStack, type LocalStack } from '../../dev/local-stack.ts';
import { readOrCreateSecret } from '../../dev/local-secret.ts';
import { durableQueue, resumePendingJobs } from '../../dev/durable-local-queue.ts';
import { createS3Client } from '../../contract/s3.ts';
import { S3BlobStore } from '../../contract/s3-blob-store.ts';
import { createApp } from '../../functions/api/app.ts';
import { loadPlaygroundPage } from '../../functions/api/playground.ts';
import { apiDepsFromEnv } from '../../functions/api/deps-from-env.ts';
import { renderPrediction } from '../../functions/api/prediction-view.ts';
import { serveApi, type ServedApi } from '../../contract/serve-http.ts';
import { startWorker, workerConfigFromEnv, type StartedWorker } from '../../sidecar/worker/start-worker.ts';
import { generateWebhookSecret } from '../../sidecar/worker/webhooks.ts';
import { resolveModelDir } from '../default-model.ts';
import { stopOnSignals } from '../stop-on-signals.ts';

/**
 * `anole serve` (`npm start`): the whole service on one machine, on embedded defaults.
 *
 *   local stack   S3 (s3rver behind the conditional-write front) + SQS, on loopback; objects under
 *                 $ANOLE_DATA_DIR/s3 (default .cache/local/s3), so outputs and the playground's
 *                 gallery survive a restart. The queue is made durable there too
 *                 (dev/durable-local-queue.ts): jobs still queued when the server stops or dies run
 *                 after the next start.
 *   worker        the model from $ANOLE_MODEL (default: the tiny random preset, made on first
 *                 start), on CPU, on its own engine thread; health server on $ANOLE_HEALTH_PORT
 *                 (default: any free port)
 *   API           on $HOST:$PORT (default 127.0.0.1:8787), with the playground at / and the bucket
 *                 on the same origin (dev/bucket-on-api-origin.ts), so every URL it hands out is
 *                 on that one origin
 *
 *   secrets       in $ANOLE_DATA_DIR, made on the first start (0600): url-signing-key (what the bucket
 *                 on the API's origin verifies presigned URLs with) and webhook-secret (unless
 *                 ANOLE_WEBHOOK_SECRET is set; named in the banner)
 *
 * Every other variable the API and the worker read (ANOLE_API_KEYS, ANOLE_PREVIEW_EVERY_ROWS, …)
 * works here too. SIGINT / SIGTERM: stop taking requests, let the worker finish the jobs in hand,
 * stop the stack, exit 0; a second signal exits at once.
 */
export interface LocalService {
  /** http://127.0.0.1:PORT */
  url: string;
  modelDir: string;
  dataDir: string;
  workerHealth: string;
  keysOn: boolean;
  /** Where the webhook secret is kept (made on the first start), or null when ANOLE_WEBHOOK_SECRET sets it. */
  webhookSecretFile: string | null;
  stop(): Promise<void>;
}

export async function startLocalService(env: NodeJS.ProcessEnv = process.env): Promise<LocalService> {
  const port = parsePort(env.PORT);
  const hostname = env.HOST || '127.0.0.1';
  const modelDir = await resolveModelDir(undefined);
  const dataDir = path.resolve(env.ANOLE_DATA_DIR || '.cache/local');
  const s3Dir = path.join(dataDir, 's3');
  await fs.mkdir(s3Dir, { recursive: true });

  let stack: LocalStack | undefined;
  let api: ServedApi | undefined;
  let worker: StartedWorker | undefined;
  const stopAll = async () => {
    await api?.close(); // no new requests; waits are answered, open streams end with `reconnect`
    await worker?.stop(); // the batch in hand finishes and is recorded
    await stack?.stop();
  };
  try {
    const page = loadPlaygroundPage(); // built (esbuild) or read while the rest starts; GET / is then instant
    stack = await startLocalStack({ dir: s3Dir });
    // listen first: presigned URLs need the port, which may be any free one (PORT=0)
    let handle: (r: Request) => Response | Promise<Response> = () => new Response('starting', { status: 503, headers: { 'retry-after': '1' } });
    // on stop, waits answer 202 and streams end with a `reconnect` event before the connections close
    const shutdown = new AbortController();
    api = await serveApi({ fetch: (r) => handle(r) }, { port, hostname, shutdown });

    const serviceEnv = { ...env, ...stack.env, ANOLE_MODEL: modelDir };
    const deps = await apiDepsFromEnv(serviceEnv);
    deps.shutdown = shutdown.signal;
    // the bucket on the API's origin takes only URLs signed with this key (kept, so URLs outlive a restart)
    const signing = { accessKeyId: 'ANOLE-LOCAL', secretAccessKey: readOrCreateSecret(path.join(dataDir, 'url-signing-key')).secret };
    const internalStore = new S3BlobStore(createS3Client(stack.s3), stack.s3.bucket);
    deps.store = presignOnOrigin(deps.store, stack.s3, api.url, signing);
    // the in-memory queue made durable: jobs left queued by a stop or a crash run after this start
    const queue = deps.queue;
    deps.queue = durableQueue(queue, internalStore);
    const resumed = await resumePendingJobs(internalStore, deps.predictions, queue, (m) => process.stderr.write(`${m}\n`));
    if (resumed.resumed > 0) process.stderr.write(`resumed ${resumed.resumed} job(s) left queued by the last run\n`);
    handle = bucketOnOrigin({ bucket: stack.s3.bucket, store: internalStore, signing, region: stack.s3.region }, createApp(deps).fetch);

    const config = workerConfigFromEnv(modelDir, { ANOLE_HEALTH_PORT: '0', ...serviceEnv });
    // a receiver must be able to verify webhooks: the secret is kept in the data directory and named in the banner
    const webhookSecretFile = config.webhookSecret ? null : path.join(dataDir, 'webhook-secret');
    if (webhookSecretFile) config.webhookSecret = readOrCreateSecret(webhookSecretFile, generateWebhookSecret).secret;
    // a preview at each quarter of the rows: 3 on the tiny 4-row grid, 3 (each a VQ decode) on the real 32
    config.worker = { previewEveryRows: Math.max(1, Math.floor(deps.config.vq.quantStateDims[0] / 4)), ...config.worker };
    // webhooks carry the prediction exactly as the API shows it
    config.present = (r) => renderPrediction(r, { presignGet: (k, s) => deps.store.presignGet(k, s), origin: api!.url, urlExpirySeconds: 3600 });
    worker = await startWorker(config);
    await page;

    return { url: api.url, modelDir, dataDir, workerHealth: worker.health.url, keysOn: (deps.apiKeys ?? []).length > 0, webhookSecretFile, stop: stopAll };
  } catch (e) {
    await stopAll().catch(() => {});
    throw e;
  }
}

/** The command: start, say how to call it, stop cleanly on a signal. */
export async function serveCommand(): Promise<void> {
  const service = await startLocalService();
  process.stdout.write(howToCall(service));
  stopOnSignals(service.stop);
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return 8787;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`PORT must be a port number, got ${value}`);
  return n;
}

/** What a newcomer needs: where things are and a curl that makes a picture. */
export function howToCall(s: Pick<LocalService, 'url' | 'modelDir' | 'dataDir' | 'workerHealth' | 'keysOn'> & Partial<Pick<LocalService, 'webhookSecretFile'>>): string {
  const auth = s.keysOn ? ` -H "Authorization: Bearer $ANOLE_KEY"` : '';
  const create = `curl -s ${s.url}/v1/predictions -H 'Content-Type: application/json' -H 'Prefer: wait'${auth} \\\n    -d '{"input": {"prompt": "A lighthouse at dusk.", "mode": "image"}}'`;
  const firstImageUrl = `node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).output.find(p=>p.type==="image").url))'`;
  return [
    `Anole is serving on ${s.url}`,
    `  playground   ${s.url}/`,
    `  API          ${s.url}/v1/predictions   (schema: ${s.url}/openapi.json)`,
    `  model        ${s.modelDir}`,
    `  data         ${s.dataDir}`,
    `  worker       ${s.workerHealth}/healthz`,
    ...(s.webhookSecretFile ? [`  webhooks     signed with the secret in ${s.webhookSecretFile} (ANOLE_WEBHOOK_SECRET to choose one)`] : []),
    s.keysOn ? `  API keys are on (ANOLE_API_KEYS): send one as a Bearer token, e.g. export ANOLE_KEY=<one of them>` : `  API keys are off (set ANOLE_API_KEYS=key1,key2 to turn them on)`,
    '',
    'Make a picture (Prefer: wait answers when it is done):',
    `  ${create}`,
    'The answer\'s "output" has a part {"type": "image", "url": …}: open that URL in a browser, or save it:',
    `  ${create} \\\n    | ${firstImageUrl} \\\n    | xargs curl -s -o lighthouse.png && echo saved lighthouse.png`,
    '',
    'Ctrl-C stops (the jobs in hand finish first).',
    '',
  ].join('\n');
}
