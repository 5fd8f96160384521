import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DirectoryBlobStore } from '../contract/blob-store.ts';
import type { GenerationJob } from '../contract/job.ts';
import { compileConstraints } from '../model/constraints.ts';
import { AnoleTokenizer } from '../model/preprocess/tokenizer.ts';
import type { GeneratorLike } from '../sidecar/engine/engine-thread.ts';
import { DEFAULT_SAMPLING } from '../contract/generation-request.ts';
import type { GenerationEvent } from '../sidecar/engine/sequence.ts';
import { loadModel, releaseModel } from '../sidecar/worker/load-model.ts';
import { runJobs, type JobUpdate } from '../sidecar/worker/run-jobs.ts';

/**
 * How the job runner turns the engine's events into a job's events and output parts, around an
 * image: text that ends in an unfinished UTF-8 character just before boi. The engine here is a
 * script of events (the real model cannot be steered to such a byte sequence); the tokenizer,
 * the image codec and the store are the real ones.
 */
const FIXTURE = 'test/fixtures/anole-tiny';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-run-jobs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('runJobs, text around an image', () => {
  it('reports the text before an image, an unfinished character included, before the image, in its events and its parts alike', async () => {
    const model = await loadModel(FIXTURE, { thread: false, intraOpNumThreads: 1 });
    const tokenizer = await AnoleTokenizer.load(FIXTURE);
    const config = model.generator.config;
    const [, a, euroLead, euro2, euro3, b] = await tokenizer.encode('A€B'); // bytes: A, E2, 82, AC, B
    const codes = new Array(config.imageSeqLength).fill(0);
    const script: GenerationEvent[] = [
      { type: 'text', sequence: 0, tokens: [a, euroLead] }, // "A" and the first byte of "€"
      { type: 'image_start', sequence: 0 },
      { type: 'image_done', sequence: 0, codes },
      { type: 'text', sequence: 0, tokens: [euro2, euro3, b] },
      { type: 'done', sequence: 0, tokens: [a, euroLead, config.boiTokenId, config.eoiTokenId, euro2, euro3, b], reason: 'length' },
    ];
    const generator: GeneratorLike = {
      config,
      capacity: model.generator.capacity,
      async *generate() {
        yield* script;
      },
      release: () => model.generator.release(),
    };
    const job: GenerationJob = {
      id: 'job-1', promptIds: [config.bosTokenId], images: [], mode: 'interleaved', constraints: compileConstraints(config, 'interleaved'),
      maxNewTokens: 16, n: 1, seed: 0, text: DEFAULT_SAMPLING.text, image: DEFAULT_SAMPLING.image, repetitionPenalty: 1,
      guidance: { text: 1, image: 1 }, logitBias: {}, outputPrefix: 'out/',
    };
    const events: JobUpdate[] = [];
    try {
      for await (const [, event] of runJobs([job], { ...model, generator }, new DirectoryBlobStore(tmp))) events.push(event);
    } finally {
      await releaseModel(model);
    }

    // events: the text before the image (held back while it ended in a lone lead byte, shown as
    // U+FFFD) comes before the image
    const kinds = events.map((u) => (u.type === 'done' ? 'done' : u.event.type === 'text' ? `text:${u.event.delta}` : u.event.type));
    expect(kinds).toEqual(['text:A\uFFFD', 'image', 'text:\uFFFD\uFFFDB', 'done']);
    // parts: the same text in the same places, so a client following the events sees the stored output
    const done = events.at(-1) as Extract<JobUpdate, { type: 'done' }>;
    const parts = done.result.sequences[0].parts;
    expect(parts.map((p) => (p.type === 'text' ? `text:${p.text}` : p.type))).toEqual(['text:A\uFFFD', 'image', 'text:\uFFFD\uFFFDB']);
  });
});
