import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sequenceRequest } from './generation-harness.ts';
import type { GenerationMode } from '../model/constraints.ts';
import { imageVocabulary } from '../model/vocabulary.ts';
import type { SequenceRequest } from '../contract/generation-request.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/** Per-request logit bias (issue 8) in the engine's head graph, on a random tiny checkpoint (N = 16). */
let dir: string;
let generator: StepGenerator;
let imageIds: Set<number>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-bias-'));
  writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 77 });
  generator = await StepGenerator.load(openCheckpoint(path.join(dir, 'ckpt')));
  imageIds = new Set(imageVocabulary(generator.config).codeToToken);
});
afterAll(async () => {
  await generator?.release();
  fs.rmSync(dir, { recursive: true, force: true });
});

const PROMPT = [0, 16900, 16801, 16702, 8710];

function request(mode: GenerationMode, maxNewTokens: number, extra: Partial<SequenceRequest> = {}): SequenceRequest {
  return sequenceRequest(generator.config, PROMPT, mode, maxNewTokens, { seed: 3, ...extra });
}

async function tokensOf(requests: SequenceRequest[]): Promise<number[][]> {
  const out: number[][] = requests.map(() => []);
  for await (const e of generator.generate(requests)) if (e.type === 'done') out[e.sequence] = e.tokens;
  return out;
}

/** The sequence as a pattern: runs of text and whole images, e.g. "boi img×16 eoi text×3". */
function shape(tokens: number[]): string {
  const c = generator.config;
  const parts: string[] = [];
  let run = '';
  let count = 0;
  const flush = () => {
    if (count) parts.push(`${run}×${count}`);
    count = 0;
  };
  for (const t of tokens) {
    const kind = t === c.boiTokenId ? 'boi' : t === c.eoiTokenId ? 'eoi' : t === c.eosTokenId ? 'eos' : imageIds.has(t) ? 'img' : 'text';
    if (kind === 'boi' || kind === 'eoi' || kind === 'eos') {
      flush();
      parts.push(kind);
    } else if (kind === run) count++;
    else {
      flush();
      run = kind;
      count = 1;
    }
  }
  flush();
  return parts.join(' ');
}

describe('logit bias', () => {
  it('a strong bias on boi opens images in interleaved mode, each exactly N image tokens between boi and eoi', async () => {
    const c = generator.config;
    const [tokens] = await tokensOf([request('interleaved', 3 * (c.imageSeqLength + 2), { logitBias: { [c.boiTokenId]: 100 } })]);
    const images = shape(tokens).split(' ').filter((p) => p === 'boi').length;
    expect(images).toBeGreaterThanOrEqual(2);
    expect(shape(tokens)).toMatch(new RegExp(`^(boi img×${c.imageSeqLength} eoi ?)+`));
  });

  it('a budget for one image but not two gives exactly one, then text continues or EOS ends', async () => {
    const c = generator.config;
    const budget = 2 * (c.imageSeqLength + 2) - 1; // room for one image and 17 more tokens
    for (const seed of [1, 2, 3]) {
      const [tokens] = await tokensOf([request('interleaved', budget, { seed, logitBias: { [c.boiTokenId]: 100 } })]);
      const s = shape(tokens);
      expect(s.split(' ').filter((p) => p === 'boi')).toHaveLength(1);
      expect(s).toMatch(new RegExp(`^boi img×${c.imageSeqLength} eoi( text×\\d+)?( eos)?$`));
      expect(tokens.length === budget || tokens[tokens.length - 1] === c.eosTokenId).toBe(true);
    }
  });

  it('a bias on a token the mode forbids changes nothing', async () => {
    const c = generator.config;
    const forbidden: Record<number, number> = { [c.boiTokenId]: 100, [c.eoiTokenId]: 100, [[...imageIds][5]]: 100 };
    const [plain, biased] = await tokensOf([request('text', 24), request('text', 24, { logitBias: forbidden })]);
    expect(biased).toEqual(plain);
    expect(plain.some((t) => imageIds.has(t))).toBe(false);
  });

  it('a bias on one row of a batch leaves the other rows identical to a run without it', async () => {
    const c = generator.config;
    const others = [request('text', 20, { seed: 11 }), request('image', c.imageSeqLength + 2, { seed: 12 }), request('interleaved', 40, { seed: 13 })];
    const alone = await tokensOf(others);
    const favourite = 16500;
    const withBiased = await tokensOf([...others, request('text', 20, { seed: 14, logitBias: { [favourite]: 100 } })]);
    expect(withBiased.slice(0, 3)).toEqual(alone);
    // the biased row did take its favourite token (repetition penalty 1.2 cannot outweigh +100)
    expect(withBiased[3].filter((t) => t === favourite).length).toBeGreaterThan(10);
  });

  it('applies to the guidance-mixed logits inside an image', async () => {
    const c = generator.config;
    const favourite = [...imageIds][42];
    const [tokens] = await tokensOf([request('image', c.imageSeqLength + 2, { logitBias: { [favourite]: 100 } })]);
    expect(tokens.slice(1, -1)).toEqual(new Array(c.imageSeqLength).fill(favourite));
  });
});
