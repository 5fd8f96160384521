import { DirectoryBlobStore } from '../contract/blob-store.ts';
import { loadRuntime } from '../sidecar/worker/load-runtime.ts';

/**
 * `node --import tsx test/load-runtime-child.ts MODEL_DIR BLOB_DIR`: loads a runtime as the worker
 * does and prints "loaded" or "failed: <message>"; the process must then exit on its own.
 */
const [modelDir, blobDir] = process.argv.slice(2);
try {
  await loadRuntime(modelDir, new DirectoryBlobStore(blobDir));
  console.log('loaded');
} catch (e) {
  console.log(`failed: ${(e as Error).message}`);
}
