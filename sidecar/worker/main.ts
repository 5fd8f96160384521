import { resolveModelLocation } from '../bundle/model-location.ts';
import { assertModelFits, servingShapeFromEnv } from '../bundle/model-memory.ts';
import { hasHugepageMalloc } from '../onnx/hugepage-malloc.ts';
import { loadModel, releaseModel } from './load-model.ts';
import { assertGpuIfRequired } from './require-gpu.ts';
import { modelLocationFromEnv, workerConfigFromEnv } from './worker-config.ts';

/**
 * The worker as a process (`tsx sidecar/worker/main.ts`), configured by the environment (see
 * workerConfigFromEnv). SIGTERM or SIGINT drains: the batch in hand finishes, then it exits 0.
 *
 * The model starts loading on its engine thread as soon as the environment is read and checked,
 * and the rest of the worker (the AWS SDK, the servers: about 0.3 s of imports from the build)
 * is imported while it loads.
 */
// no model setting, no worker (modelLocationFromEnv); an s3:// location or a Hub repo id is downloaded (once) first
const config = workerConfigFromEnv(await resolveModelLocation(modelLocationFromEnv()));
// refused in one line, before anything loads or the rest is imported: a model that must run on CUDA where CUDA
// cannot start (require-gpu.ts; loadModel asks too, for `serve`), and a load that cannot fit this machine:
// weights + KV cache at ANOLE_BATCH_SIZE + activations (model-memory.ts)
await assertGpuIfRequired(config.modelDir);
const fits = assertModelFits(config.modelDir, servingShapeFromEnv());
// the cache the check counted (ANOLE_BATCH_SIZE jobs of 3 rows at the full context) is what engine v2 allocates,
// unless ANOLE_KV_CACHE_MIB says otherwise: on a GPU its 1 GiB default would not hold one 7B slot
const cache = { cacheBytes: fits.kvCacheBytes, ...config.cache };
const model = loadModel(config.modelDir, { intraOpNumThreads: config.intraOpNumThreads, ...cache });
model.catch(() => {}); // startWorker reports it; a failed import below must not leave it unhandled
const { startWorker } = await import('./start-worker.ts').catch(async (e) => {
  await model.then(releaseModel, () => {});
  throw e;
});
const started = await startWorker(config, model);
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
