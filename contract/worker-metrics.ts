/**
 * The CloudWatch metrics a worker publishes (sidecar/worker/metrics-log.ts) and the infra's scaling
 * reads (infra/worker-scaling.ts): one namespace, and the metric that counts queued work inside workers.
 */
export const METRICS_NAMESPACE = 'Anole';
/** Cache rows the worker's jobs wait for beyond its slots (sequences queued in its engine). */
export const ROWS_WAITING_METRIC = 'CacheRowsWaiting';
