import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../sidecar/weights/safetensors-writer.ts';

// Random decoder checkpoints for configurations the fixture does not cover (GQA, swin_norm, the
// GAIR layout, rope scaling, biases), compared against the plain-TS reference decoder.

export interface RandomDecoder {
  hidden: number;
  heads: number;
  kvHeads: number;
  layers?: number;
  ropeTheta?: number;
  ropeScaling?: { type: string; factor: number };
  swinNorm?: boolean;
  forkLayout?: boolean;
  attentionBias?: boolean;
  mlpBias?: boolean;
  tie?: boolean;
  dtype?: 'F32' | 'BF16';
  /** Tensors to leave out or to write with another shape (error tests). */
  drop?: string;
  reshape?: { name: string; shape: number[] };
}

export const VOCAB = 96;
const INTERMEDIATE = 48;
const tempDirs: string[] = [];
/** Deletes every checkpoint written so far (a test file's afterAll). */
export function removeRandomDecoders(): void {
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** A random Anole decoder checkpoint (config.json + model.safetensors) with the fixture's init scheme. */
export function writeRandomDecoder(spec: RandomDecoder, seed: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-decoder-'));
  tempDirs.push(dir);
  const { hidden: C, heads: H, kvHeads: KVH } = spec;
  const D = C / H;
  const layers = spec.layers ?? 2;
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['AnoleForConditionalGeneration'],
      hidden_size: C, intermediate_size: INTERMEDIATE, num_hidden_layers: layers, num_attention_heads: H, num_key_value_heads: KVH,
      vocab_size: VOCAB, rope_theta: spec.ropeTheta ?? 10000, rope_scaling: spec.ropeScaling ?? null, swin_norm: spec.swinNorm ?? false,
      attention_bias: spec.attentionBias ?? false, mlp_bias: spec.mlpBias ?? false, tie_word_embeddings: spec.tie ?? false,
      bos_token_id: 0, pad_token_id: 1, eos_token_id: 2, image_token_id: 95, boi_token_id: 94, eoi_token_id: 93, vq_config: {},
    }),
  );
  let s = seed >>> 0;
  const uniform = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], kind: 'matrix' | 'gain' | 'bias' | 'embed') => {
    if (name === spec.drop) return;
    if (spec.reshape?.name === name) shape = spec.reshape.shape;
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape[shape.length - 1];
    const value = { matrix: () => normal() / Math.sqrt(fanIn), gain: () => 1 + 0.1 * normal(), bias: () => 0.1 * normal(), embed: normal }[kind];
    tensors.push({ name, dtype: spec.dtype ?? 'BF16', shape, data: Float32Array.from({ length: n }, value) });
  };
  const norm = (heads: number) => (spec.forkLayout ? [D] : [heads, D]);
  add('model.embed_tokens.weight', [VOCAB, C], 'embed');
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [C], 'gain');
    add(`${p}.post_attention_layernorm.weight`, [C], 'gain');
    for (const [proj, rows] of [['q', H * D], ['k', KVH * D], ['v', KVH * D], ['o', C]] as const) {
      add(`${p}.self_attn.${proj}_proj.weight`, [rows, proj === 'o' ? H * D : C], 'matrix');
      if (spec.attentionBias) add(`${p}.self_attn.${proj}_proj.bias`, [rows], 'bias');
    }
    for (const [qk, heads] of [['q', H], ['k', KVH]] as const) {
      add(`${p}.self_attn.${qk}_norm.weight`, norm(heads), 'gain');
      add(`${p}.self_attn.${qk}_norm.bias`, norm(heads), 'bias');
    }
    for (const [proj, shape] of [['gate', [INTERMEDIATE, C]], ['up', [INTERMEDIATE, C]], ['down', [C, INTERMEDIATE]]] as const) {
      add(`${p}.mlp.${proj}_proj.weight`, [...shape], 'matrix');
      if (spec.mlpBias) add(`${p}.mlp.${proj}_proj.bias`, [shape[0]], 'bias');
    }
  }
  add('model.norm.weight', [C], 'gain');
  if (!spec.tie) add('lm_head.weight', [VOCAB, C], 'matrix');
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}
