/**
 * The one place where the deployment and the deployed code agree on names: the environment variables
 * each process reads, the bucket's key prefixes, the container's paths and the EventBridge vocabulary.
 * Plain constants (no aws-cdk-lib import), so the service code can import them too.
 */

/** Environment variables, by the name the service code already reads them under. */
export const ENV = {
  /** contract/s3.ts: the one private bucket. */
  bucket: 'ANOLE_S3_BUCKET',
  /** contract/sqs.ts: the job queue. */
  queueUrl: 'ANOLE_QUEUE_URL',
  /**
   * sidecar/worker/worker-config.ts (required: the worker has no default model), functions/api/deps-from-env.ts:
   * the model directory. In the worker container a local directory (the model-sync container filled it from
   * S3 before the worker starts). The
   * Lambdas are given the bundle's `s3://bucket/prefix/` URI; infra/handlers/model-files.ts copies the
   * few files the API reads (config, tokenizer, processor) to /tmp and points this variable there
   * before the API code loads.
   */
  model: 'ANOLE_MODEL',
  /** functions/api/auth.ts: comma-separated Bearer keys; unset = keys off (the Function URL's IAM auth guards instead). */
  apiKeys: 'ANOLE_API_KEYS',
  /** sidecar/worker/start-worker.ts: the Standard Webhooks signing secret, injected from Secrets Manager. */
  webhookSecret: 'ANOLE_WEBHOOK_SECRET',
  /** start-worker.ts: the health server; 0.0.0.0 is not needed, ECS and Docker probe from inside the container. */
  healthPort: 'ANOLE_HEALTH_PORT',
  /** start-worker.ts: the lease a received job starts with; the worker extends it while it works. */
  visibilitySeconds: 'ANOLE_VISIBILITY_SECONDS',
  /** start-worker.ts: deliveries that may run a job; one less than the queue's maxReceiveCount (see WorkerOptions.maxAttempts). */
  maxAttempts: 'ANOLE_MAX_ATTEMPTS',
  /** worker-config.ts: jobs a worker runs at once; the worker refuses to start when they cannot fit (model-memory.ts). */
  batchSize: 'ANOLE_BATCH_SIZE',
  /** worker-config.ts: seconds between the worker's CloudWatch metric lines (the scaling reads CacheRowsWaiting). */
  metricsLogSeconds: 'ANOLE_METRICS_LOG_SECONDS',
  /** worker-config.ts and the API: tokens a prediction may use, when the cache slots are shorter than the model's context. */
  maxContext: 'ANOLE_MAX_CONTEXT',
  /** infra/handlers/request-intake.ts: the API's public URL, so accepted requests carry their prediction's real URLs. */
  apiUrl: 'ANOLE_API_URL',
  /** infra/handlers: the EventBridge bus that receives requests and gets completion events. */
  eventBus: 'ANOLE_EVENT_BUS',
} as const;

/** Key prefixes in the bucket (docs/service.md §1), as S3 event filters and lifecycle rules need them. */
export const KEYS = {
  /** A JSON prediction request put here starts a job (the event-driven entry). */
  requests: 'requests/',
  uploads: 'uploads/',
  inputs: 'inputs/',
  jobs: 'jobs/',
  predictions: 'predictions/',
  outputs: 'outputs/',
  idempotency: 'idempotency/',
  /** contract/prediction-store.ts: one marker per prediction under its owner, for listing. */
  owners: 'owners/',
  /** The default home of the model bundle (a Hugging Face checkpoint directory, synced as is). */
  models: 'models/anole/',
  /** The status object of a prediction: `predictions/{id}/status.json`. */
  statusObjectPattern: 'predictions/*/status.json',
} as const;

/** The worker container: where the model bundle is synced to, and the health port probed. */
export const CONTAINER = {
  /** On the instance: survives task restarts (and warm-pool stops), so a restart syncs only what changed. */
  hostModelDir: '/var/lib/anole/model',
  modelDir: '/opt/anole/model',
  healthPort: 8788,
  /** ECS's maximum on EC2: time for a draining worker to finish the batch in hand before SIGKILL. */
  stopTimeoutSeconds: 120,
} as const;

/** EventBridge: requests come in on the stack's bus with DETAIL_TYPE.requested; results go out with the others. */
export const EVENTS = {
  /** The source of every event this service publishes. */
  source: 'anole.serve',
  requested: 'Prediction Requested',
  accepted: 'Prediction Accepted',
  rejected: 'Prediction Rejected',
  completed: 'Prediction Completed',
} as const;
