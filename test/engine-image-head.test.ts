import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sequenceRequest } from './generation-harness.ts';
import type { GenerationMode } from '../model/constraints.ts';
import type { SequenceRequest } from '../contract/generation-request.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/**
 * The image head (lm_head's image rows only) is a speed-up, not a different sampler: the same
 * requests give the same tokens with it and with the full-vocabulary head alone.
 */
let dir: string;
let withHead: StepGenerator;
let fullOnly: StepGenerator;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-image-head-'));
  writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 99 });
  const ckpt = openCheckpoint(path.join(dir, 'ckpt'));
  [withHead, fullOnly] = await Promise.all([StepGenerator.load(ckpt), StepGenerator.load(ckpt, { imageHead: false })]);
});
afterAll(async () => {
  await Promise.all([withHead?.release(), fullOnly?.release()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

function request(mode: GenerationMode, maxNewTokens: number, seed: number, extra: Partial<SequenceRequest> = {}): SequenceRequest {
  return sequenceRequest(withHead.config, [0, 16900 + seed, 16801, 8710], mode, maxNewTokens, { seed, ...extra });
}

async function run(generator: StepGenerator, requests: SequenceRequest[], chunkSize?: number) {
  const tokens: number[][] = requests.map(() => []);
  const before = { ...generator.stats };
  for await (const e of generator.generate(requests, { chunkSize })) if (e.type === 'done') tokens[e.sequence] = e.tokens;
  return { tokens, runs: generator.stats.runs - before.runs, imageHeadRuns: generator.stats.imageHeadRuns - before.imageHeadRuns };
}

describe('image head', () => {
  it('gives the same tokens as the full-vocabulary head, guided or not, in every mode', async () => {
    const N = withHead.config.imageSeqLength;
    const boi = { [withHead.config.boiTokenId]: 30 };
    const requests = [
      request('image', N + 2, 1),
      request('image', N + 2, 2, { guidance: { text: 1, image: 1 } }),
      request('interleaved', 3 * (N + 2), 3, { logitBias: boi }),
      request('interleaved', 3 * (N + 2), 4, { logitBias: boi, guidance: { text: 1, image: 1 } }),
      request('text', 12, 5),
    ];
    for (const chunk of [undefined, 5]) {
      const a = await run(withHead, requests, chunk);
      const b = await run(fullOnly, requests, chunk);
      expect(a.tokens).toEqual(b.tokens);
      expect(a.tokens[0]).toHaveLength(N + 2);
    }
  });

  it('a batch of images chooses every image token on the image head', async () => {
    const N = withHead.config.imageSeqLength;
    const requests = [request('image', N + 2, 7), request('image', N + 2, 8)];
    const a = await run(withHead, requests);
    const b = await run(fullOnly, requests);
    expect(a.tokens).toEqual(b.tokens);
    // image mode starts inside the image (boi is in the prompt): N image steps on the image head for
    // both sequences at once, then eoi on the full head
    expect(a.imageHeadRuns).toBe(N);
    expect(b.imageHeadRuns).toBe(0);
  });
});
