import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sequenceRequest } from './generation-harness.ts';
import type { GenerationMode } from '../model/constraints.ts';
import { imageVocabulary } from '../model/vocabulary.ts';
import type { SequenceRequest } from '../contract/generation-request.ts';
import type { GenerateOptions } from '../sidecar/engine/generation-engine.ts';
import type { FinishReason, GenerationEvent } from '../sidecar/engine/sequence.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/**
 * The generation engine (engine v2) on a random 'tiny' checkpoint (16 image tokens, a 4×4 grid),
 * sampling with DEFAULT_SAMPLING: reproducibility (seeds, batching, chunk boundaries), the structure
 * each mode guarantees, cancellation, the event stream, and host↔runtime traffic.
 */
let dir: string;
let generator: StepGenerator;
let vocab: ReturnType<typeof imageVocabulary>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-generator-'));
  writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 2024 });
  generator = await StepGenerator.load(openCheckpoint(path.join(dir, 'ckpt')));
  vocab = imageVocabulary(generator.config);
});
afterAll(async () => {
  await generator?.release();
  fs.rmSync(dir, { recursive: true, force: true });
});

const config = () => generator.config;
const N = () => config().imageSeqLength;
const [gridHeight, gridWidth] = [() => config().vq.quantStateDims[0], () => config().vq.quantStateDims[1]];

// prompts of different lengths: BOS, a few text ids, sep
const PROMPT_A = [0, 16900, 16801, 16702, 8710];
const PROMPT_B = [0, 16950, 8710];
const PROMPT_C = [0, 16420, 16421, 16422, 16423, 16424, 16425, 16426, 8710];
const OFF = { text: 1, image: 1 };

function request(promptIds: number[], mode: GenerationMode, maxNewTokens: number, extra: Partial<SequenceRequest> = {}): SequenceRequest {
  return sequenceRequest(config(), promptIds, mode, maxNewTokens, extra);
}
const boiBias = () => ({ [config().boiTokenId]: 50 });

interface Outcome {
  events: GenerationEvent[];
  done: { tokens: number[]; reason: FinishReason }[];
}

/** Runs a batch to the end: exactly one `done` per request, and nothing of a sequence after its `done`. */
async function run(requests: SequenceRequest[], opts: GenerateOptions = {}, onEvent: (e: GenerationEvent) => void = () => {}): Promise<Outcome> {
  const events: GenerationEvent[] = [];
  const done: (Outcome['done'][number] | undefined)[] = requests.map(() => undefined);
  for await (const e of generator.generate(requests, opts)) {
    expect(done[e.sequence], `event ${e.type} of sequence ${e.sequence} after its done`).toBeUndefined();
    events.push(e);
    if (e.type === 'done') done[e.sequence] = { tokens: e.tokens, reason: e.reason };
    onEvent(e);
  }
  return {
    events,
    done: done.map((d, i) => {
      if (!d) throw new Error(`sequence ${i} never finished`);
      return d;
    }),
  };
}
const tokensOf = (o: Outcome) => o.done.map((d) => d.tokens);

type Kind = 'boi' | 'eoi' | 'eos' | 'img' | 'text';
function kindOf(id: number): Kind {
  const c = config();
  if (id === c.boiTokenId) return 'boi';
  if (id === c.eoiTokenId) return 'eoi';
  if (id === c.eosTokenId) return 'eos';
  return vocab.tokenToCode[id] >= 0 ? 'img' : 'text';
}

/** A token sequence as runs of kinds, e.g. "boi img×16 eoi text×5": the structure at a glance. */
function layout(tokens: number[]): string {
  const runs: [Kind, number][] = [];
  for (const id of tokens) {
    const last = runs[runs.length - 1];
    if (last && last[0] === kindOf(id)) last[1]++;
    else runs.push([kindOf(id), 1]);
  }
  return runs.map(([kind, n]) => (n === 1 ? kind : `${kind}×${n}`)).join(' ');
}
const image = () => `boi img×${N()} eoi`;

/** The codes of each image (boi … eoi) in a token sequence. */
function imagesOf(tokens: number[]): number[][] {
  const { tokenToCode } = vocab;
  const images: number[][] = [];
  let current: number[] | undefined;
  for (const id of tokens) {
    if (id === config().boiTokenId) current = [];
    else if (id === config().eoiTokenId && current) images.push(current), (current = undefined);
    else if (current) current.push(tokenToCode[id]);
  }
  return images;
}

/**
 * The event stream agrees with the final tokens, per sequence: text events concatenated are the
 * text tokens; each image opens with image_start, reports rows 1..height in order whose codes
 * are prefixes of its final codes, and closes with image_done carrying those codes; done is last.
 */
function expectConsistentEvents(o: Outcome): void {
  o.done.forEach(({ tokens }, s) => {
    const events = o.events.filter((e) => e.sequence === s);
    expect(events[events.length - 1].type).toBe('done');
    const text = events.flatMap((e) => (e.type === 'text' ? e.tokens : []));
    expect(text).toEqual(tokens.filter((id) => kindOf(id) === 'text'));

    const images = imagesOf(tokens);
    const imageEvents = events.filter((e) => e.type.startsWith('image_'));
    let k = -1;
    let rows = 0;
    for (const e of imageEvents) {
      if (e.type === 'image_start') {
        k++;
        rows = 0;
      } else if (e.type === 'image_rows') {
        expect(e.rows, `sequence ${s} image ${k}`).toBe(++rows);
        expect(e.codes).toEqual(images[k].slice(0, rows * gridWidth()));
      } else if (e.type === 'image_done') {
        expect(rows).toBe(gridHeight());
        expect(e.codes).toEqual(images[k]);
      }
    }
    expect(imageEvents.filter((e) => e.type === 'image_done').length).toBe(images.length);
  });
}

describe('reproducibility (DEFAULT_SAMPLING, seeded uniforms)', () => {
  // different prompts, modes, lengths; guided and unguided; interleaved ones open images (boi bias)
  const mixedBatch = () => [
    request(PROMPT_A, 'text', 21, { seed: 11 }),
    request(PROMPT_B, 'image', N() + 2, { seed: 12 }),
    request(PROMPT_C, 'interleaved', 2 * (N() + 2) + 5, { seed: 13, logitBias: boiBias() }),
    request(PROMPT_A, 'image', 3 * N(), { seed: 14, guidance: OFF }),
    request(PROMPT_B, 'interleaved', N() + 2 + 6, { seed: 15, logitBias: boiBias(), guidance: OFF }),
    request(PROMPT_C, 'text', 9, { seed: 16 }),
  ];
  let baseline: Promise<Outcome> | undefined;
  const reference = () => (baseline ??= run(mixedBatch()));

  it('the same seeds give identical tokens twice', async () => {
    const first = await reference();
    const second = await run(mixedBatch());
    expect(tokensOf(second)).toEqual(tokensOf(first));
    expectConsistentEvents(first);
  });

  it('a sequence gives the same tokens alone as inside a batch of other requests', async () => {
    const batched = tokensOf(await reference());
    for (const [k, r] of mixedBatch().entries()) {
      const alone = await run([r]);
      expect(alone.done[0].tokens, `request ${k}`).toEqual(batched[k]);
    }
  });

  it('chunk boundaries do not change results: chunkSize 1, 3 and the default agree', async () => {
    const batched = tokensOf(await reference());
    for (const chunkSize of [1, 3]) expect(tokensOf(await run(mixedBatch(), { chunkSize })), `chunkSize ${chunkSize}`).toEqual(batched);
  });

  it('different seeds give different tokens', async () => {
    const base = tokensOf(await reference());
    const reseeded = mixedBatch().map((r) => ({ ...r, seed: r.seed + 100 }));
    const other = tokensOf(await run(reseeded));
    base.forEach((tokens, k) => expect(other[k], `request ${k}`).not.toEqual(tokens));
    // and each differs in its images too, not only in where they start
    expect(imagesOf(other[1])).not.toEqual(imagesOf(base[1]));
  });
});

describe('structure of each mode (random weights)', () => {
  it('image mode: boi, exactly N image tokens, eoi and nothing else, even with budget to spare or biases elsewhere', async () => {
    const c = config();
    const { done } = await run([
      request(PROMPT_A, 'image', N() + 2, { seed: 3 }),
      request(PROMPT_B, 'image', 3 * N(), { seed: 4, guidance: OFF }),
      request(PROMPT_C, 'image', 2 * N(), { seed: 5, logitBias: { [c.eosTokenId]: 50, [c.boiTokenId]: 50, 16500: 50 } }),
    ]);
    for (const d of done) {
      expect(layout(d.tokens)).toBe(image());
      expect(d.reason).toBe('image');
    }
  });

  it('text mode never produces image tokens, boi or eoi, even when they are strongly biased', async () => {
    const c = config();
    const { codeToToken } = vocab;
    const bias = { [c.boiTokenId]: 50, [c.eoiTokenId]: 50, [codeToToken[0]]: 50, [codeToToken[4000]]: 50 };
    const { done } = await run([request(PROMPT_A, 'text', 24, { seed: 6, logitBias: bias }), request(PROMPT_B, 'text', 24, { seed: 7, logitBias: bias, guidance: OFF })]);
    for (const d of done) {
      expect(layout(d.tokens)).toBe('text×24');
      expect(d.reason).toBe('length');
    }
  });

  it('interleaved with a strong boi bias: images of exactly N tokens between boi and eoi, then text resumes', async () => {
    const budget = 2 * (N() + 2) + 5; // two images, then too little room for a third
    const o = await run([
      request(PROMPT_A, 'interleaved', budget, { seed: 8, logitBias: boiBias() }),
      request(PROMPT_B, 'interleaved', budget, { seed: 9, logitBias: boiBias(), guidance: OFF }),
    ]);
    for (const d of o.done) {
      expect(layout(d.tokens)).toBe(`${image()} ${image()} text×5`);
      expect(d.reason).toBe('length');
    }
    expectConsistentEvents(o);
  });

  it('interleaved never opens an image the budget cannot hold (N+1 tokens), and opens one at exactly N+2', async () => {
    const { done } = await run([
      request(PROMPT_A, 'interleaved', N() + 1, { seed: 10, logitBias: boiBias() }),
      request(PROMPT_A, 'interleaved', N() + 1, { seed: 11, logitBias: boiBias(), guidance: OFF }),
      request(PROMPT_A, 'interleaved', N() + 2, { seed: 12, logitBias: boiBias() }),
    ]);
    expect(done.map((d) => layout(d.tokens))).toEqual([`text×${N() + 1}`, `text×${N() + 1}`, image()]);
  });

  it('an empty batch yields no events', async () => {
    const events: GenerationEvent[] = [];
    for await (const e of generator.generate([])) events.push(e);
    expect(events).toEqual([]);
  });

  it('image mode with max_new_tokens < N+2 throws a clear error', async () => {
    await expect(run([request(PROMPT_A, 'image', N() + 1)])).rejects.toThrow(`max_new_tokens ${N() + 1} cannot hold an image: it needs ${N() + 2}`);
  });

  it('EOS ends a text sequence early while the rest of the batch runs to its length', async () => {
    const eos = config().eosTokenId;
    const { done } = await run([request(PROMPT_A, 'text', 20, { seed: 13, logitBias: { [eos]: 50 } }), request(PROMPT_B, 'text', 10, { seed: 14 })]);
    expect(done[0]).toEqual({ tokens: [eos], reason: 'eos' });
    expect(layout(done[1].tokens)).toBe('text×10');
    expect(done[1].reason).toBe('length');
  });

  it('n images per prompt (seeds s, s+1, s+2): n complete, different images', async () => {
    const { done } = await run([40, 41, 42].map((seed) => request(PROMPT_C, 'image', N() + 2, { seed })));
    for (const d of done) expect(layout(d.tokens)).toBe(image());
    expect(new Set(done.map((d) => imagesOf(d.tokens)[0].join(','))).size).toBe(3);
  });

  it('a mixed batch (text, image, interleaved, with and without guidance) gives each request its own structure', async () => {
    const o = await run([
      request(PROMPT_A, 'text', 13, { seed: 20 }),
      request(PROMPT_B, 'image', N() + 2, { seed: 21 }),
      request(PROMPT_C, 'image', N() + 2, { seed: 22, guidance: OFF }),
      request(PROMPT_A, 'interleaved', N() + 2 + 3, { seed: 23, logitBias: boiBias() }),
      request(PROMPT_B, 'interleaved', 2 * (N() + 2) + 1, { seed: 24, logitBias: boiBias(), guidance: OFF }),
      request(PROMPT_C, 'text', 30, { seed: 25, guidance: OFF }),
    ]);
    expect(o.done.map((d) => layout(d.tokens))).toEqual(['text×13', image(), image(), `${image()} text×3`, `${image()} ${image()} text`, 'text×30']);
    expect(o.done.map((d) => d.reason)).toEqual(['length', 'image', 'image', 'length', 'length', 'length']);
    expectConsistentEvents(o);
  });
});

describe('cancellation', () => {
  // text and image mode only: no guidance rows come or go
  const batch = (signal?: AbortSignal) => [
    request(PROMPT_A, 'text', 20, { seed: 30, signal }),
    request(PROMPT_B, 'image', N() + 2, { seed: 31 }),
    request(PROMPT_C, 'text', 12, { seed: 32 }),
  ];

  it("a request's AbortSignal stops that sequence before its next step ('canceled'); the others finish as before", async () => {
    const uncanceled = await run(batch());
    const controller = new AbortController();
    const o = await run(batch(controller.signal), {}, (e) => e.sequence === 0 && controller.abort());
    // its first event comes after its first step (first token latency), before the decoder step on it
    expect(o.done[0].reason).toBe('canceled');
    expect(o.done[0].tokens).toEqual(uncanceled.done[0].tokens.slice(0, 1));
    expect(o.done.slice(1)).toEqual(uncanceled.done.slice(1));
    expectConsistentEvents(o);
  });

  it('the generation-wide AbortSignal cancels every unfinished sequence', async () => {
    const controller = new AbortController();
    const o = await run(batch(), { signal: controller.signal }, (e) => e.type === 'image_rows' && controller.abort());
    expect(o.done.map((d) => d.reason)).toEqual(['canceled', 'canceled', 'canceled']);
    // boi, the first step's token (delivered at once), then a default chunk of steps (one grid row)
    // whose delivery carries the first row's image_rows
    expect(o.done[1].tokens.length).toBe(1 + 1 + gridWidth());
  });
});

describe('host↔runtime traffic (stats)', () => {
  it('moves a few bytes per generated token, the same at every context length', async () => {
    const measure = async (maxNewTokens: number) => {
      const before = { ...generator.stats };
      await run([request(PROMPT_A, 'text', maxNewTokens, { seed: 3 })]);
      const tokens = generator.stats.tokens - before.tokens;
      return (generator.stats.bytesIn - before.bytesIn + generator.stats.bytesOut - before.bytesOut) / tokens;
    };
    const [short, long] = [await measure(40), await measure(400)];
    console.log(`engine v2: ${short.toFixed(0)} B/token over 40 tokens, ${long.toFixed(0)} B/token over 400`);
    // the batch's settings (the mode mask and bias rows) are written once; each step moves a few dozen bytes
    expect(long).toBeLessThan(short);
    expect(long).toBeLessThan(4096);
  });
});
