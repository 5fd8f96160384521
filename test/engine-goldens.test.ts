import fs from 'node:fs';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileConstraints, type GenerationMode } from '../model/constraints.ts';
import { imageVocabulary } from '../model/vocabulary.ts';
import type { SamplingSettings, SequenceRequest } from '../contract/generation-request.ts';
import type { GenerationEvent } from '../sidecar/engine/sequence.ts';
import { StepGenerator } from '../sidecar/engine/step-generator.ts';
import { TextModel } from '../sidecar/engine/text-model.ts';
import { mixGuidance } from '../sidecar/graphs/sampler.ts';
import { DataType, GraphBuilder } from '../sidecar/onnx/graph-builder.ts';
import { createSession } from '../sidecar/onnx/session.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { readSafetensorsHeader, readTensorAsFloat32 } from '../sidecar/weights/safetensors.ts';

/**
 * The generation engine (engine v2: step graph, head graph, continuous batching) against the HF /
 * Meta-reference goldens of fixture A: greedy text, left-padded text batch, image-only and
 * classifier-free guidance.
 */
const FIXTURE = 'test/fixtures/anole-tiny';
const notes = JSON.parse(fs.readFileSync(`${FIXTURE}/goldens.json`, 'utf8'));
const goldenTensors = readSafetensorsHeader(`${FIXTURE}/goldens.safetensors`).tensors;
const golden = (name: string) => readTensorAsFloat32(goldenTensors.get(name)!);
const gen = notes.generation;
const cfg = notes.cfg;
const CFG_PROMPTS = ['text_prompt', 'text_image_prompt'] as const;

const GREEDY: SamplingSettings = { temperature: 1, topP: 1, topK: 0, greedy: true };
const NO_GUIDANCE = { text: 1, image: 1 };
const GUIDANCE = { text: cfg.guidance_scale_text as number, image: cfg.guidance_scale_image as number };

interface Finished {
  tokens: number[];
  reason: string;
  /** codes of every image_done event */
  images: number[][];
}

type Engine = Pick<StepGenerator, 'config' | 'generate' | 'release'>;

/** Runs a batch to the end; one `done` per request, in request order. */
async function run(generator: Engine, requests: SequenceRequest[]): Promise<Finished[]> {
  const out: (Finished | undefined)[] = requests.map(() => undefined);
  const images: number[][][] = requests.map(() => []);
  for await (const e of generator.generate(requests) as AsyncGenerator<GenerationEvent>) {
    if (e.type === 'image_done') images[e.sequence].push(e.codes);
    if (e.type === 'done') {
      expect(out[e.sequence], `a second done for sequence ${e.sequence}`).toBeUndefined();
      out[e.sequence] = { tokens: e.tokens, reason: e.reason, images: images[e.sequence] };
    }
  }
  return out.map((f, i) => {
    if (!f) throw new Error(`sequence ${i} never finished`);
    return f;
  });
}

describe('engine v2 vs the fixture goldens (anole-tiny, greedy)', () => {
  let generator: Engine;
  const config = () => generator.config;
  const request = (promptIds: number[], mode: GenerationMode, maxNewTokens: number, guidance = NO_GUIDANCE): SequenceRequest => ({
    promptIds,
    constraints: compileConstraints(config(), mode),
    maxNewTokens,
    text: GREEDY,
    image: GREEDY,
    repetitionPenalty: 1,
    guidance,
    seed: 1,
  });
  // the padded golden batch, unpadded: the engine pads by itself
  const leftpadPrompts = (): number[][] => {
    const { input_ids: ids, attention_mask: mask } = gen.text_only_batch_leftpad;
    return ids.map((row: number[], b: number) => row.filter((_, t) => mask[b][t] === 1));
  };
  const leftpadExpected = (): number[][] => gen.text_only_batch_leftpad.output_ids.map((row: number[]) => row.slice(gen.text_only_batch_leftpad.input_ids[0].length));
  // image mode: boi first (forced), eoi last; the CFG golden records only the 16 chosen ids
  const cfgRequest = (name: (typeof CFG_PROMPTS)[number]) => request(cfg.prompts[name].prompt_ids, 'image', config().imageSeqLength + 2, GUIDANCE);
  const cfgExpected = (name: (typeof CFG_PROMPTS)[number]) => [config().boiTokenId, ...cfg.prompts[name].chosen_ids, config().eoiTokenId];

  beforeAll(async () => {
    generator = await StepGenerator.load(openCheckpoint(FIXTURE));
  });
  afterAll(() => generator.release());

  it('text_only: 12 greedy tokens with image tokens, boi and eoi suppressed (a batch of one)', async () => {
    const [done] = await run(generator, [request(gen.text_only.prompt_ids, 'text', gen.text_only.new_ids.length)]);
    expect(done.tokens).toEqual(gen.text_only.new_ids);
    expect(done.reason).toBe('length');
  });

  it('text_only_batch_leftpad: both rows of a left-padded batch', async () => {
    const expected = leftpadExpected();
    const done = await run(generator, leftpadPrompts().map((p) => request(p, 'text', expected[0].length)));
    expect(done.map((d) => d.tokens)).toEqual(expected);
  });

  it('image_only: boi, 16 image tokens, eoi; image_done carries the golden codes', async () => {
    const [done] = await run(generator, [request(gen.image_only.prompt_ids, 'image', gen.image_only.new_ids.length)]);
    expect(done.tokens).toEqual(gen.image_only.new_ids);
    expect(done.images).toEqual([gen.image_only.image_codes]);
    expect(done.reason).toBe('image');
  });

  it('classifier-free guidance: both prompts token for token (Meta reference, scales 3 / 1.2)', async () => {
    const done = await run(generator, CFG_PROMPTS.map(cfgRequest));
    CFG_PROMPTS.forEach((name, k) => {
      expect(done[k].tokens, name).toEqual(cfgExpected(name));
      expect(done[k].images, name).toEqual([cfg.prompts[name].chosen_codes]);
    });
  });

  it('every golden in ONE batch (text, padded text, image, guided image) gives the same tokens', async () => {
    const leftpad = leftpadExpected();
    const requests = [
      ...CFG_PROMPTS.map(cfgRequest),
      request(gen.text_only.prompt_ids, 'text', gen.text_only.new_ids.length),
      request(gen.image_only.prompt_ids, 'image', gen.image_only.new_ids.length),
      ...leftpadPrompts().map((p) => request(p, 'text', leftpad[0].length)),
    ];
    const done = await run(generator, requests);
    expect(done.map((d) => d.tokens)).toEqual([...CFG_PROMPTS.map(cfgExpected), gen.text_only.new_ids, gen.image_only.new_ids, ...leftpad]);
  });
});

describe('first CFG step: the padded 3-stream prefill and the guidance mix (anole-tiny)', () => {
  let model: TextModel;
  let mixer: ort.InferenceSession;
  beforeAll(async () => {
    model = await TextModel.load(openCheckpoint(FIXTURE), { logits: 'last' });
    // the same mix the head graph uses, alone: rows [full, image-conditioned, unconditioned] → one row
    const g = new GraphBuilder('cfg_mix');
    const logits = g.input('logits', DataType.FLOAT, [3, 'vocab']);
    const row = (name: string, r: number) => g.constant(name, DataType.INT64, [1], [r]);
    const scales = { image: g.constant('s_img', DataType.FLOAT, [1], [GUIDANCE.image]), text: g.constant('s_txt', DataType.FLOAT, [1], [GUIDANCE.text]) };
    g.op('Identity', [mixGuidance(g, logits, { full: row('full', 0), imageCond: row('image_cond', 1), uncond: row('uncond', 2) }, scales)], {}, { output: 'mixed' });
    g.output('mixed', DataType.FLOAT, [1, 'vocab']);
    mixer = await createSession(g.build());
  });
  afterAll(async () => {
    await model.release();
    await mixer.release();
  });

  /** max |a[j] − b[j]| */
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    expect(a.length).toBe(b.length);
    let max = 0;
    for (let j = 0; j < a.length; j++) max = Math.max(max, Math.abs(a[j] - b[j]));
    return max;
  };

  for (const name of CFG_PROMPTS) {
    it(`${name}: stream logits within 1e-4, mixed logits within 5e-4, arg-max = the first chosen id`, async () => {
      const c = model.config;
      const { codeToToken } = imageVocabulary(c);
      const V = c.vocabSize;
      const N = codeToToken.length;
      const { input_ids: inputIds, attention_mask: attentionMask, position_ids: positionIds } = cfg.prompts[name].first_pass;
      const out = await model.forward({ inputIds, attentionMask, positionIds });
      expect(out.dims).toEqual([3, 1, V]);

      // streams restricted to the image ids, index j = code j (as the golden stores them)
      const streams = new Float32Array(3 * N);
      for (let r = 0; r < 3; r++) for (let code = 0; code < N; code++) streams[r * N + code] = out.logits[r * V + codeToToken[code]];
      const streamDiff = maxDiff(streams, golden(`cfg.${name}.first_step_stream_logits_img`));

      const mixedOut = await mixer.run({ logits: new ort.Tensor('float32', out.logits, [3, V]) });
      const mixedAll = mixedOut.mixed.data as Float32Array;
      const mixed = Float32Array.from(codeToToken, (id) => mixedAll[id]);
      const mixedDiff = maxDiff(mixed, golden(`cfg.${name}.first_step_mixed_logits_img`));

      // the mix alone, fed the golden streams: the same float32 expression in the same order, so bitwise equal
      const goldenStreams = golden(`cfg.${name}.first_step_stream_logits_img`);
      const mixOnly = await mixer.run({ logits: new ort.Tensor('float32', goldenStreams, [3, N]) });
      const mixOnlyDiff = maxDiff(mixOnly.mixed.data as Float32Array, golden(`cfg.${name}.first_step_mixed_logits_img`));

      console.log(`cfg ${name}: first-step stream logits max diff ${streamDiff.toExponential(2)}, mixed max diff ${mixedDiff.toExponential(2)}, mix of the golden streams max diff ${mixOnlyDiff.toExponential(2)}`);
      expect(streamDiff).toBeLessThan(1e-4);
      expect(mixedDiff).toBeLessThan(5e-4);
      expect(mixOnlyDiff).toBe(0);
      let best = 0;
      for (let code = 1; code < N; code++) if (mixed[code] > mixed[best]) best = code;
      expect(codeToToken[best]).toBe(cfg.prompts[name].chosen_ids[0]);
    });
  }
});
