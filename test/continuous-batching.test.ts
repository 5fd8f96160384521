import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SequenceRequest } from '../contract/generation-request.ts';
import type { GenerationEvent } from '../sidecar/engine/sequence.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';
import { sequenceRequest } from './generation-harness.ts';

/**
 * Engine v2's continuous batching (sidecar/engine/scheduler.ts) on the tiny random model: generate
 * calls that overlap share decode steps; a call joins while another runs, waits when the cache is
 * full, and a sequence's tokens do not depend on who else runs or when it joined.
 */
let dir: string;
let ckpt: ReturnType<typeof openCheckpoint>;
let engine: StepGenerator;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-continuous-'));
  writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 11 });
  ckpt = openCheckpoint(path.join(dir, 'ckpt'));
  // prompts are prefilled 3 tokens at a time: joining prompts interleave with decode steps
  engine = await StepGenerator.load(ckpt, { intraOpNumThreads: 1, prefillChunk: 3 });
});
afterAll(async () => {
  await engine?.release();
  fs.rmSync(dir, { recursive: true, force: true });
});

const PROMPT_TEXT = [0, 16950, 8710, 16420, 16421, 8711, 16801];
const PROMPT_IMAGE = [0, 16900, 16801, 8710];

function guidedImage(seed: number): SequenceRequest {
  const c = engine.config;
  return sequenceRequest(c, PROMPT_IMAGE, 'image', c.imageSeqLength + 2, { seed });
}
function text(seed: number, maxNewTokens = 12, extra: Partial<SequenceRequest> = {}): SequenceRequest {
  return sequenceRequest(engine.config, PROMPT_TEXT, 'text', maxNewTokens, { seed, ...extra });
}

/** Collects a call's events, with a clock of scheduler progress: the engine's generated-token count. */
async function collect(call: AsyncGenerator<GenerationEvent>, onEvent: (e: GenerationEvent) => void = () => {}) {
  const events: { e: GenerationEvent; tokens: number }[] = [];
  for await (const e of call) {
    events.push({ e, tokens: engine.stats.tokens });
    onEvent(e);
  }
  return events;
}
const doneOf = (events: { e: GenerationEvent }[]) => events.map((x) => x.e).filter((e) => e.type === 'done');

describe('continuous batching (engine v2)', () => {
  it('a call that arrives during a guided image runs at once and finishes first; both as they would alone', async () => {
    const aloneImage = doneOf(await collect(engine.generate([guidedImage(5)])));
    const aloneText = doneOf(await collect(engine.generate([text(6, 4)])));

    let textCall: Promise<{ e: GenerationEvent; tokens: number }[]> | undefined;
    let joinedAt = -1;
    const image = await collect(engine.generate([guidedImage(5)]), (e) => {
      if (e.type === 'image_rows' && !textCall) {
        joinedAt = engine.stats.tokens;
        textCall = collect(engine.generate([text(6, 4)]));
      }
    });
    const joined = await textCall!;
    const imageDoneAt = image.find((x) => x.e.type === 'done')!.tokens;
    // its first token came after it joined and before the image's last
    expect(joined[0].tokens).toBeGreaterThan(joinedAt);
    expect(joined[0].tokens).toBeLessThan(imageDoneAt);
    expect(joined.find((x) => x.e.type === 'done')!.tokens).toBeLessThan(imageDoneAt);
    expect(doneOf(image)).toEqual(aloneImage);
    expect(doneOf(joined)).toEqual(aloneText);
  });

  it('hands each token out before the decoder step on it runs (a reader never waits for a step only the next token needs)', async () => {
    const before = { ...engine.stats };
    const seen: { tokens: number; steps: number }[] = [];
    for await (const e of engine.generate([text(61, 6)], { chunkSize: 1 })) {
      if (e.type === 'text') seen.push({ tokens: engine.stats.tokens - before.tokens, steps: engine.stats.steps - before.steps });
    }
    expect(seen.map((x) => x.tokens)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seen.map((x) => x.steps)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('seeded outputs are the same alone, in one static batch and joining one by one mid-run', async () => {
    const requests = () => [text(21, 20), guidedImage(22), text(23, 9, { repetitionPenalty: 1.5 }), guidedImage(24), text(25, 15, { presencePenalty: 0.5 })];
    const alone: unknown[] = [];
    for (const r of requests()) alone.push(doneOf(await collect(engine.generate([r])))[0]);
    const staticBatch = doneOf(await collect(engine.generate(requests())));
    const inOrder = [...staticBatch].sort((a, b) => a.sequence - b.sequence); // done events come as sequences end
    expect(inOrder.map((d) => ({ ...d, sequence: 0 }))).toEqual(alone);

    // each request joins when the previous call has produced its first event
    const calls: Promise<{ e: GenerationEvent; tokens: number }[]>[] = [];
    const start = (i: number) => {
      const r = requests()[i];
      calls[i] = collect(engine.generate([r]), () => {
        if (i + 1 < 5 && !calls[i + 1]) start(i + 1);
      });
    };
    start(0);
    while (calls.length < 5) await new Promise((r) => setTimeout(r, 1));
    const joined = await Promise.all(calls);
    expect(joined.map((events) => doneOf(events)[0])).toEqual(alone);
  });

  it('rows leave the batch when they end (EOS, length, image), are canceled or their reader stops; their slots are freed', async () => {
    const before = engine.load.freeSlots;
    const eos = collect(engine.generate([text(30, 40, { logitBias: { [engine.config.eosTokenId]: 100 } })]));
    const controller = new AbortController();
    const canceled = collect(engine.generate([text(31, 40, { signal: controller.signal })]), (e) => e.type === 'text' && controller.abort());
    // a reader that stops after its first event
    const abandoning = (async () => {
      for await (const e of engine.generate([guidedImage(32)])) return e;
    })();
    const image = collect(engine.generate([guidedImage(33)]));
    const [c, first, img, e] = await Promise.all([canceled, abandoning, image, eos]);
    expect(doneOf(e)[0]).toMatchObject({ reason: 'eos', tokens: [engine.config.eosTokenId] });
    expect(doneOf(c)[0]).toMatchObject({ type: 'done', reason: 'canceled' });
    expect((doneOf(c)[0] as { tokens: number[] }).tokens.length).toBeLessThan(40);
    expect(first?.type).toBe('image_start');
    expect(doneOf(img)[0]).toMatchObject({ reason: 'image' });
    expect(doneOf(img)).toEqual(doneOf(await collect(engine.generate([guidedImage(33)]))));
    await new Promise((r) => setTimeout(r, 20)); // the abandoned call ends at the scheduler's next turn
    expect(engine.load).toMatchObject({ queued: 0, admitted: 0, freeSlots: before });
  });
});

describe('a cache with room for one guided image', () => {
  let small: StepGenerator;
  beforeAll(async () => {
    small = await StepGenerator.load(ckpt, { intraOpNumThreads: 1, maxSlots: 3, cacheContext: 64 });
  });
  afterAll(async () => small?.release());

  it('a call that does not fit waits in order and then runs, as it would alone', async () => {
    expect(small.capacity).toEqual({ slots: 3, context: 64 });
    const aloneText = [];
    for await (const e of small.generate([text(41, 6)])) if (e.type === 'done') aloneText.push(e);
    let queuedWhileImage = -1;
    const order: string[] = [];
    let textCall: Promise<unknown[]> | undefined;
    const image = (async () => {
      for await (const e of small.generate([guidedImage(40)])) {
        if (e.type === 'image_start') {
          textCall ??= (async () => {
            const done = [];
            for await (const t of small.generate([text(41, 6)], { onAdmitted: (k) => order.push(`text:admitted:${k}`) })) {
              if (t.type === 'done') done.push(t);
              order.push(`text:${t.type}`);
            }
            return done;
          })();
          await new Promise((r) => setImmediate(r));
          queuedWhileImage = small.load.queued;
        }
        order.push(`image:${e.type}`);
      }
    })();
    await image;
    expect(queuedWhileImage).toBe(1);
    expect(await textCall!).toEqual(aloneText);
    // the text was admitted (took its slots) and started only after the image had freed its slots
    expect(order.findIndex((x) => x.startsWith('text:'))).toBe(order.indexOf('text:admitted:0'));
    expect(order.indexOf('text:admitted:0')).toBeGreaterThan(order.indexOf('image:done'));
  });

  it('refuses at once what could never fit, naming the limit', async () => {
    const tooLong = text(42, 64 - PROMPT_TEXT.length + 1);
    await expect(collect(small.generate([tooLong]))).rejects.toThrow(`prompt (${PROMPT_TEXT.length} tokens) + max_new_tokens (${64 - PROMPT_TEXT.length + 1}) does not fit the engine's 64-token cache slots`);
    await expect(StepGenerator.load(ckpt, { cacheBytes: 1024, maxSlots: 3 })).rejects.toThrow(/a KV cache of 0 MiB holds 0 slot\(s\) of \d+ tokens .* a guided image needs 3/);
  });
});
