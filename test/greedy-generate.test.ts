import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageVocabulary } from '../model/vocabulary.ts';
import { greedyGenerate, leftPad } from '../sidecar/engine/greedy-generate.ts';
import { TextModel } from '../sidecar/engine/text-model.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import { writeSafetensors, type TensorToWrite } from '../sidecar/weights/safetensors-writer.ts';

const FIXTURE = 'test/fixtures/anole-tiny';
const gen = JSON.parse(fs.readFileSync(`${FIXTURE}/goldens.json`, 'utf8')).generation;

describe('greedy generation vs the HF goldens (anole-tiny)', () => {
  let model: TextModel;
  beforeAll(async () => {
    // generation only reads the last position: the graph computes logits for it alone
    model = await TextModel.load(openCheckpoint(FIXTURE), { logits: 'last' });
  });
  afterAll(() => model.release());

  it('text_only: 12 new tokens with image tokens, boi and eoi suppressed', async () => {
    const { prompt_ids: prompt, new_ids: expected } = gen.text_only;
    expect(await greedyGenerate(model, [prompt], { mode: 'text', maxNewTokens: expected.length })).toEqual([expected]);
  });

  it('text_only_batch_leftpad: a left-padded batch of two prompts', async () => {
    const { input_ids: padded, attention_mask: mask, output_ids: outputs } = gen.text_only_batch_leftpad;
    const prompts = padded.map((row: number[], b: number) => row.filter((_, t) => mask[b][t] === 1));
    expect(leftPad(prompts, model.config.padTokenId)).toEqual({ inputIds: padded, attentionMask: mask });
    const expected = outputs.map((row: number[]) => row.slice(padded[0].length));
    expect(await greedyGenerate(model, prompts, { mode: 'text', maxNewTokens: expected[0].length })).toEqual(expected);
  });

  it('image_only: boi, image_seq_length image tokens, eoi', async () => {
    const { prompt_ids: prompt, new_ids: expected, image_codes: codes } = gen.image_only;
    const [generated] = await greedyGenerate(model, [prompt], { mode: 'image' });
    expect(generated).toEqual(expected);
    const { tokenToCode } = imageVocabulary(model.config);
    expect(generated.slice(1, -1).map((id) => tokenToCode[id])).toEqual(codes);
  });

  it('image mode refuses a token budget too small for one image', async () => {
    await expect(greedyGenerate(model, [[0]], { mode: 'image', maxNewTokens: 17 })).rejects.toThrow(/an image needs 18 new tokens/);
  });
});

/**
 * A hand-made checkpoint whose next token depends only on the current one: every layer's output
 * projections are zero, so the hidden state is the token's embedding. Embedding dim 0 is +1 for
 * token A (30) and for boi, -1 for every other token; lm_head row r scores r by dim 0:
 *   +1 → EOS wins;  -1 → boi (60) > eoi (50) > image id 10 (40) > C = 40 (20), so text mode picks C.
 */
const A = 30;
const C_TOKEN = 40;
const IMAGE_FAVOURITE = 10;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function writeRuleCheckpoint(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-greedy-'));
  dirs.push(dir);
  const [V, C, H, D, I] = [64, 8, 2, 4, 8];
  const [eos, eoi, boi] = [2, 20, 21];
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['AnoleForConditionalGeneration'],
      vocab_size: V, hidden_size: C, intermediate_size: I, num_hidden_layers: 1, num_attention_heads: H, num_key_value_heads: H,
      bos_token_id: 0, pad_token_id: 1, eos_token_id: eos, eoi_token_id: eoi, boi_token_id: boi, image_token_id: 22,
      // 16 image tokens (ids 4..19) and a 2×2 latent: image_seq_length 4
      vq_config: { num_embeddings: 16, resolution: 4, channel_multiplier: [1, 1], base_channels: 32 },
    }),
  );
  const tensor = (name: string, shape: number[], fill: (data: Float32Array) => void = () => {}): TensorToWrite => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    fill(data);
    return { name, dtype: 'F32', shape, data };
  };
  const ones = (d: Float32Array) => d.fill(1);
  const p = 'model.layers.0';
  writeSafetensors(path.join(dir, 'model.safetensors'), [
    tensor('model.embed_tokens.weight', [V, C], (d) => {
      for (let id = 0; id < V; id++) {
        d[id * C] = id === A || id === boi ? 1 : -1;
        d[id * C + 1] = 1;
      }
    }),
    tensor(`${p}.input_layernorm.weight`, [C], ones),
    tensor(`${p}.post_attention_layernorm.weight`, [C], ones),
    ...['q', 'k', 'v', 'o'].map((n) => tensor(`${p}.self_attn.${n}_proj.weight`, [C, C])),
    ...['q', 'k'].flatMap((n) => [tensor(`${p}.self_attn.${n}_norm.weight`, [H, D], ones), tensor(`${p}.self_attn.${n}_norm.bias`, [H, D])]),
    tensor(`${p}.mlp.gate_proj.weight`, [I, C]),
    tensor(`${p}.mlp.up_proj.weight`, [I, C]),
    tensor(`${p}.mlp.down_proj.weight`, [C, I]),
    tensor('model.norm.weight', [C], ones),
    tensor('lm_head.weight', [V, C], (d) => {
      d[eos * C] = 10;
      d[C_TOKEN * C] = -10;
      d[IMAGE_FAVOURITE * C] = -20;
      d[boi * C] = -30;
      d[eoi * C] = -25;
    }),
  ]);
  return dir;
}

describe('greedy generation rules (hand-made checkpoint)', () => {
  let model: TextModel;
  beforeAll(async () => {
    model = await TextModel.load(openCheckpoint(writeRuleCheckpoint()), { intraOpNumThreads: 1 });
  });
  afterAll(() => model.release());

  it('text mode: a row stops at EOS while the other runs to max_new_tokens; image tokens, boi and eoi are never picked', async () => {
    // unconstrained, the model would pick boi after a "-1" token
    const { logits, dims } = await model.forward({ inputIds: [[0, 31]] });
    const last = logits.subarray((dims[1] - 1) * dims[2]);
    expect(last.indexOf(Math.max(...last))).toBe(model.config.boiTokenId);

    expect(await greedyGenerate(model, [[0, A], [0, 31, 32]], { mode: 'text', maxNewTokens: 4 })).toEqual([[2], [C_TOKEN, C_TOKEN, C_TOKEN, C_TOKEN]]);
    expect(await greedyGenerate(model, [[0, 31, A]], { mode: 'text', maxNewTokens: 10 })).toEqual([[2]]);
  });

  it('image mode: boi and eoi forced, image tokens only in between (not EOS, not boi/eoi)', async () => {
    expect(model.config.imageSeqLength).toBe(4);
    // after boi (+1) EOS would win but only image ids compete: all score 0 but id 10, so the first, 4; after 4 (-1), id 10
    expect(await greedyGenerate(model, [[0, 31], [0, A, 32]], { mode: 'image' })).toEqual([
      [21, 4, IMAGE_FAVOURITE, IMAGE_FAVOURITE, IMAGE_FAVOURITE, 20],
      [21, 4, IMAGE_FAVOURITE, IMAGE_FAVOURITE, IMAGE_FAVOURITE, 20],
    ]);
  });
});
