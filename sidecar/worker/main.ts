import { resolveModelDir } from '../../cli/default-model.ts';
import { hasHugepageMalloc } from '../onnx/hugepage-malloc.ts';
import { startWorker, workerConfigFromEnv } from './start-worker.ts';

/**
 * The worker as a process (`tsx sidecar/worker/main.ts`), configured by the environment (see
 * workerConfigFromEnv). SIGTERM or SIGINT drains: the batch in hand finishes, then it exits 0.
 */
const config = workerConfigFromEnv(await resolveModelDir(undefined));
const started = await startWorker(config);
if (!process.env.ANOLE_WEBHOOK_SECRET) console.error(`webhook secret (set ANOLE_WEBHOOK_SECRET to keep one): ${started.webhookSecret}`);
// one line a supervisor (or a test) can wait for, with the cold start it took (process start to
// taking jobs, model download included) and whether malloc was on huge pages (about half the load)
const startedSeconds = Math.round(performance.now()) / 1000;
console.log(JSON.stringify({ ready: true, worker: started.worker.id, health: started.health.url, pid: process.pid, started_seconds: startedSeconds, hugepage_malloc: hasHugepageMalloc() }));

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: draining`);
    started.stop().then(
      () => process.exit(0),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  });
}
