import { loadModel } from '../sidecar/worker/load-model.ts';

/**
 * `node --import tsx test/load-model-child.ts MODEL_DIR`: loads a model as the worker
 * does and prints "loaded" or "failed: <message>"; the process must then exit on its own.
 */
const [modelDir] = process.argv.slice(2);
try {
  await loadModel(modelDir);
  console.log('loaded');
} catch (e) {
  console.log(`failed: ${(e as Error).message}`);
}
