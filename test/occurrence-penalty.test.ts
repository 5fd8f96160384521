import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sequenceRequest } from './generation-harness.ts';
import { referenceSample } from './reference/sampler-reference.ts';
import type { SequenceRequest } from '../contract/generation-request.ts';
import type { GenerationEvent } from '../sidecar/engine/sequence.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { sampleTokens } from '../sidecar/graphs/sampler.ts';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeRandomCheckpoint } from '../sidecar/weights/random-checkpoint.ts';

/**
 * OpenAI's presence and frequency penalties: in the sampler graph against a plain-JavaScript
 * reference (l − presence·[count > 0] − frequency·count), then in the engine on a random tiny
 * checkpoint (which keeps the counts in two device buffers).
 */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('presence / frequency penalties in the sampler graph', () => {
  it('pick exactly what the reference picks from the penalised logits', async () => {
    const g = new GraphBuilder('occurrence');
    const x = {
      logits: g.input('logits', DataType.FLOAT, ['rows', 'vocab']),
      allowed: g.input('allowed', DataType.BOOL, ['rows', 'vocab']),
      temperature: g.input('temperature', DataType.FLOAT, ['rows']),
      topP: g.input('top_p', DataType.FLOAT, ['rows']),
      topK: g.input('top_k', DataType.INT64, ['rows']),
      greedy: g.input('greedy', DataType.BOOL, ['rows']),
      uniform: g.input('uniform', DataType.FLOAT, ['rows']),
      occurrence: { presence: g.input('presence', DataType.FLOAT, ['rows']), frequency: g.input('frequency', DataType.FLOAT, ['rows']), counts: g.input('counts', DataType.FLOAT, ['rows', 'vocab']) },
    };
    g.op('Identity', [sampleTokens(g, x)], {}, { output: 'token' });
    g.output('token', DataType.INT64, ['rows']);
    const session = await createSession(g.build());

    const rand = lcg(11);
    const V = 48;
    const G = 200;
    const rows = Array.from({ length: G }, (_, n) => {
      const logits = Array.from({ length: V }, () => Math.fround((rand() - 0.5) * 6));
      const counts = logits.map(() => (rand() < 0.3 ? Math.floor(rand() * 4) : 0));
      return {
        logits,
        counts,
        allowed: logits.map(() => rand() < 0.8),
        presence: Math.fround((rand() - 0.3) * 2),
        frequency: Math.fround((rand() - 0.3) * 2),
        temperature: 1,
        topP: n % 3 === 0 ? 1 : 0.9,
        topK: 0,
        greedy: n % 2 === 0,
        uniform: Math.fround(rand()),
      };
    });
    const flat = (f: (r: (typeof rows)[number]) => number[]) => rows.flatMap(f);
    const out = await session.run({
      logits: new ort.Tensor('float32', Float32Array.from(flat((r) => r.logits)), [G, V]),
      allowed: new ort.Tensor('bool', Uint8Array.from(flat((r) => r.allowed.map(Number))), [G, V]),
      temperature: new ort.Tensor('float32', Float32Array.from(rows, (r) => r.temperature), [G]),
      top_p: new ort.Tensor('float32', Float32Array.from(rows, (r) => r.topP), [G]),
      top_k: new ort.Tensor('int64', BigInt64Array.from(rows, (r) => BigInt(r.topK)), [G]),
      greedy: new ort.Tensor('bool', Uint8Array.from(rows, (r) => Number(r.greedy)), [G]),
      uniform: new ort.Tensor('float32', Float32Array.from(rows, (r) => r.uniform), [G]),
      presence: new ort.Tensor('float32', Float32Array.from(rows, (r) => r.presence), [G]),
      frequency: new ort.Tensor('float32', Float32Array.from(rows, (r) => r.frequency), [G]),
      counts: new ort.Tensor('float32', Float32Array.from(flat((r) => r.counts)), [G, V]),
    });
    const f = Math.fround;
    const expected = rows.map((r) =>
      referenceSample({ ...r, logits: r.logits.map((l, j) => f(l - f(f(Number(r.counts[j] > 0) * r.presence) + f(r.counts[j] * r.frequency)))) }),
    );
    const tokens = Array.from(out.token.data as BigInt64Array, Number);
    expect(tokens).toEqual(expected);
    // the penalties matter: without them some picks differ
    const unpenalised = rows.map((r) => referenceSample(r));
    expect(unpenalised.filter((t, n) => t !== tokens[n]).length).toBeGreaterThan(10);
  });
});

describe('presence / frequency penalties in the engine', () => {
  let dir: string;
  let engine: StepGenerator;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-occurrence-'));
    writeRandomCheckpoint({ out: path.join(dir, 'ckpt'), preset: 'tiny', seed: 2024 });
    engine = await StepGenerator.load(openCheckpoint(path.join(dir, 'ckpt')));
  });
  afterAll(async () => {
    await engine?.release();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const tokens = async (requests: SequenceRequest[], chunkSize?: number) => {
    const out: number[][] = requests.map(() => []);
    for await (const e of engine.generate(requests, { chunkSize }) as AsyncIterable<GenerationEvent>) if (e.type === 'done') out[e.sequence] = e.tokens;
    return out;
  };
  const greedy = { temperature: 1, topP: 1, topK: 0, greedy: true };
  const text = (extra: Partial<SequenceRequest>) => sequenceRequest(engine.config, [0, 5, 6, 7, 8, 9], 'text', 40, { text: greedy, repetitionPenalty: 1, ...extra });

  it('a large presence penalty stops a greedy sequence repeating any token; none lets it repeat', async () => {
    const [plain] = await tokens([text({})]);
    expect(new Set(plain).size).toBeLessThan(plain.length); // the random model loops without a penalty
    for (const penalty of [{ presencePenalty: 1000 }, { frequencyPenalty: 1000 }]) {
      const [penalised] = await tokens([text(penalty)]);
      expect(penalised.length).toBe(40);
      expect(new Set(penalised).size).toBe(penalised.length);
    }
  });

  // the counts live in two device buffers the head swaps at every step: they must follow each
  // sequence whatever else is in the batch and however often events are handed out
  it('the same tokens at any chunk size and alone as in a batch with and without penalties', async () => {
    const prompt = [0, 4, 4, 3];
    const batch = () => [
      sequenceRequest(engine.config, prompt, 'text', 36, { text: greedy, repetitionPenalty: 1, frequencyPenalty: 0.8, seed: 3 }),
      sequenceRequest(engine.config, prompt, 'text', 36, { presencePenalty: 1.5, frequencyPenalty: 0.75, seed: 1 }),
      sequenceRequest(engine.config, prompt, 'text', 36, { seed: 1 }),
      sequenceRequest(engine.config, prompt, 'interleaved', 36, { presencePenalty: 1.5, frequencyPenalty: 0.75, seed: 0 }),
    ];
    const a = await tokens(batch());
    expect(await tokens(batch(), 1)).toEqual(a);
    for (const [k, r] of batch().entries()) expect((await tokens([r]))[0], `request ${k} alone`).toEqual(a[k]);
    expect(a[1]).not.toEqual(a[2]); // the same seed and prompt: only the penalties differ
  });
});
