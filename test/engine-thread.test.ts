import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sequenceRequest } from './generation-harness.ts';
import type { GenerationMode } from '../model/constraints.ts';
import { EngineThread } from '../sidecar/engine/engine-thread.ts';
import type { SequenceRequest } from '../contract/generation-request.ts';
import { loadEngine, type GenerationEngine } from '../sidecar/engine/generation-engine.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/** The engine on its own thread behaves exactly as in-process, and keeps the main thread free. */
let dir: string;
let thread: EngineThread;
let local: GenerationEngine; // the production engine, in process
let codec: ImageCodec;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-thread-'));
  writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 5 });
  const ckpt = openCheckpoint(path.join(dir, 'ckpt'));
  [thread, local, codec] = await Promise.all([EngineThread.start(path.join(dir, 'ckpt')), loadEngine(ckpt), ImageCodec.load(ckpt)]);
});
afterAll(async () => {
  await Promise.all([thread?.close(), local?.release(), codec?.release()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

function request(mode: GenerationMode, maxNewTokens: number, seed: number, signal?: AbortSignal): SequenceRequest {
  return sequenceRequest(local.config, [0, 16900, 16801 + seed, 8710], mode, maxNewTokens, { seed, signal });
}

async function collect(generate: AsyncGenerator<{ type: string; sequence: number }>) {
  const events: { type: string; sequence: number }[] = [];
  for await (const e of generate) events.push(e);
  return events;
}

/** How many times the event loop turned (setImmediate) between asking for a generation's first event and getting it; drains the rest. */
async function turnsBeforeFirstEvent(generate: AsyncGenerator<{ type: string }>): Promise<number> {
  let turns = 0;
  let counting = true;
  const turn = () => {
    if (!counting) return;
    turns++;
    setImmediate(turn);
  };
  setImmediate(turn);
  await generate.next();
  counting = false;
  for await (const _ of generate);
  return turns;
}

describe('EngineThread', () => {
  it('streams the same events as the in-process generator', async () => {
    const N = local.config.imageSeqLength;
    const requests = () => [request('image', N + 2, 1), request('text', 10, 2), request('interleaved', 30, 3)];
    const [there, here] = await Promise.all([collect(thread.generator.generate(requests())), collect(local.generate(requests()))]);
    expect(there).toEqual(here);
    expect(there.filter((e) => e.type === 'done')).toHaveLength(3);
  });

  it("reports each sequence's admission across the thread, before that sequence's first event", async () => {
    const admittedBeforeFirstEvent: number[] = [];
    const admitted = new Set<number>();
    for await (const e of thread.generator.generate([request('text', 4, 4), request('text', 4, 5)], { onAdmitted: (s) => admitted.add(s) })) {
      if (!admittedBeforeFirstEvent.includes(e.sequence) && admitted.has(e.sequence)) admittedBeforeFirstEvent.push(e.sequence);
    }
    expect(admittedBeforeFirstEvent.sort()).toEqual([0, 1]);
  });

  it('encodes and decodes images like the in-process codec', async () => {
    const [, , h, w] = [1, 3, local.config.vq.resolution, local.config.vq.resolution];
    const pixels = Float32Array.from({ length: 2 * 3 * h * w }, (_, i) => Math.sin(i / 7));
    const [tokensThere, tokensHere] = await Promise.all([thread.codec.encodeTokens(pixels.slice(), 2), codec.encodeTokens(pixels, 2)]);
    expect(tokensThere.map((t) => Array.from(t))).toEqual(tokensHere.map((t) => Array.from(t)));
    const codes = [Array.from({ length: thread.codec.imageSeqLength }, (_, i) => (i * 37) % 8192)];
    expect(Array.from(await thread.codec.decode(codes))).toEqual(Array.from(await codec.decode(codes)));
  });

  it('forwards a request AbortSignal across the thread', async () => {
    const controller = new AbortController();
    const events: { type: string; sequence: number; reason?: string }[] = [];
    for await (const e of thread.generator.generate([request('text', 200, 4, controller.signal), request('text', 12, 5)], { chunkSize: 2 })) {
      events.push(e as never);
      if (events.length === 1) controller.abort();
    }
    const done = events.filter((e) => e.type === 'done');
    expect(done.find((e) => e.sequence === 0)?.reason).toBe('canceled');
    expect(done.find((e) => e.sequence === 1)?.reason).not.toBe('canceled');
  });

  it('a reader that stops early frees its cache slots on the thread at once', async () => {
    // three slots: a guided interleaved sequence (3 rows) holds them all, so the next call waits until it leaves
    const small = await EngineThread.start(path.join(dir, 'ckpt'), { maxSlots: 3 });
    try {
      const c = small.generator.config;
      const endless = sequenceRequest(c, [0, 16900, 8710], 'interleaved', 4000, { seed: 1, logitBias: { [c.eosTokenId]: -100, [c.boiTokenId]: -100 } });
      for await (const _ of small.generator.generate([endless])) break; // the reader stops after one event
      const after = await collect(small.generator.generate([request('text', 4, 6)]));
      expect(after.at(-1)?.type).toBe('done');
      // the abandoned sequence was canceled, not run to its 4,000 tokens before the next could take its slots
      expect(small.lastStats!.tokens).toBeLessThan(1000);
    } finally {
      await small.close();
    }
  });

  it('keeps the main thread free while the engine runs', async () => {
    // The main thread's event loop turns counted until a call's first event (the prefill and the first
    // step): no clock, an order. In process the runs block the loop, so it cannot turn before that
    // event (the premise of the thread); on the thread it turns all along.
    const requests = () => [request('text', 40, 6), request('text', 40, 7)];
    const [there, here] = [await turnsBeforeFirstEvent(thread.generator.generate(requests(), { chunkSize: 40 })), await turnsBeforeFirstEvent(local.generate(requests(), { chunkSize: 40 }))];
    expect(here).toBe(0);
    expect(there).toBeGreaterThan(0);
  });

  it('a bad checkpoint rejects start() with the checkpoint error', async () => {
    const bad = path.join(dir, 'bad');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'config.json'), '{ not json');
    await expect(EngineThread.start(bad)).rejects.toThrow(/config\.json: not valid JSON/);
  });
});
