import net from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../sidecar/worker/load-model.ts';
import { startWorker } from '../sidecar/worker/start-worker.ts';
import { workerConfigFromEnv } from '../sidecar/worker/worker-config.ts';

const FIXTURE = 'test/fixtures/anole-tiny';

describe('startWorker', () => {
  it('releases the model it was handed when it cannot start (its health port is taken), so the process can exit', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      // the model the worker's process starts loading before it imports startWorker
      const model = await loadModel(FIXTURE, { thread: false, intraOpNumThreads: 1 });
      const released: string[] = [];
      for (const part of ['generator', 'codec'] as const) {
        const release = model[part].release.bind(model[part]);
        model[part].release = () => (released.push(part), release());
      }
      const closed = 'http://127.0.0.1:9'; // nothing is contacted before the health server starts
      const config = workerConfigFromEnv(FIXTURE, {
        ANOLE_QUEUE_URL: `${closed}/000000000000/jobs`,
        ANOLE_SQS_ENDPOINT: closed,
        ANOLE_S3_ENDPOINT: closed,
        ANOLE_HEALTH_PORT: String(port),
      });
      await expect(startWorker(config, Promise.resolve(model))).rejects.toThrow(/EADDRINUSE/);
      expect(released.sort()).toEqual(['codec', 'generator']);
    } finally {
      blocker.close();
    }
  });
});
