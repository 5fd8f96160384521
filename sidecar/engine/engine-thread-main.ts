import { parentPort, workerData } from 'node:worker_threads';
import type { SequenceRequest } from '../../contract/generation-request.ts';
import { loadEngine, type GenerationEngine } from './generation-engine.ts';
import { ImageCodec } from './image-codec.ts';
import { openModel } from './model-source.ts';
import type { ToThread, FromThread } from './engine-thread.ts';

/**
 * The engine's own thread: ONNX Runtime's session.run blocks the thread it runs on for a whole
 * chunk, so the model lives here and the main thread stays free for HTTP, health checks and I/O.
 */
const port = parentPort!;
const send = (message: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

const { modelDir, session } = workerData as { modelDir: string; session: Record<string, unknown> };
let generator: GenerationEngine;
let codec: ImageCodec;
const aborts = new Map<number, AbortController[]>();

try {
  const model = openModel(modelDir); // a Hugging Face checkpoint (validated) or a bundle
  [generator, codec] = await Promise.all([loadEngine(model, session), ImageCodec.load(model, session)]);
  // the main thread reads the config itself (EngineThread.start)
  send({ type: 'ready', capacity: { ...generator.capacity } });
} catch (e) {
  send({ type: 'failed', message: (e as Error).message });
}

port.on('message', async (m: ToThread) => {
  try {
    switch (m.type) {
      case 'generate': {
        const controllers = m.requests.map(() => new AbortController());
        aborts.set(m.id, controllers);
        const requests: SequenceRequest[] = m.requests.map((r, i) => ({ ...r, signal: controllers[i].signal }));
        const onAdmitted = (sequence: number) => send({ type: 'admitted', id: m.id, sequence });
        for await (const event of generator.generate(requests, { ...m.options, onAdmitted })) send({ type: 'event', id: m.id, event });
        send({ type: 'end', id: m.id, stats: { ...generator.stats } });
        aborts.delete(m.id);
        break;
      }
      case 'abort':
        aborts.get(m.id)?.[m.sequence]?.abort();
        break;
      case 'encodeTokens': {
        const tokens = await codec.encodeTokens(m.pixelValues, m.batch);
        send({ type: 'result', id: m.id, value: tokens }, tokens.map((t) => t.buffer as ArrayBuffer));
        break;
      }
      case 'decode': {
        const pixels = await codec.decode(m.codes);
        send({ type: 'result', id: m.id, value: pixels }, [pixels.buffer as ArrayBuffer]);
        break;
      }
    }
  } catch (e) {
    send({ type: 'error', id: m.id, message: (e as Error).message });
  }
});
