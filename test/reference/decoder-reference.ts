import type { AnoleConfig } from '../../model/config.ts';
import type { Checkpoint } from '../../sidecar/weights/checkpoint.ts';
import { readTensorAsFloat32 } from '../../sidecar/weights/safetensors.ts';

/**
 * A plain TypeScript Anole text decoder, for tests only: written from docs/model.md §2 (not from
 * the graph code), one row and one token at a time, in float64, llama2.c style. No KV cache: it
 * always runs the whole sequence, which is what the graph's cached steps are compared against.
 */

type Vec = Float64Array;

export interface ReferenceDecoder {
  config: AnoleConfig;
  /** A float32 checkpoint tensor by name. */
  w(name: string): Float32Array;
}

export function referenceDecoder(ckpt: Checkpoint): ReferenceDecoder {
  if (!ckpt.config) throw new Error('not an Anole checkpoint');
  const cache = new Map<string, Float32Array>();
  return {
    config: ckpt.config,
    w(name) {
      if (!cache.has(name)) cache.set(name, readTensorAsFloat32(ckpt.tensor(name)));
      return cache.get(name)!;
    },
  };
}

// out[r] = Σ_c W[r, c] · x[c] (+ b[r]); W is a HF Linear weight [rows, cols]
function matvec(W: Float32Array, x: Vec, rows: number, bias?: Float32Array): Vec {
  const cols = x.length;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = bias ? bias[r] : 0;
    for (let c = 0; c < cols; c++) s += W[r * cols + c] * x[c];
    out[r] = s;
  }
  return out;
}

function rmsNorm(x: Vec, weight: Float32Array, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * weight[i]);
}

// LayerNorm statistics over one head's D values (biased variance), eps 1e-5 fixed by HF
function layerNormNoAffine(x: Vec): Vec {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) * (v - mean), 0) / x.length;
  return x.map((v) => (v - mean) / Math.sqrt(variance + 1e-5));
}

const silu = (v: number) => v / (1 + Math.exp(-v));

/**
 * Logits [B, T, V] for a batch. `mask` is the 2-D attention mask (1 = real token), `positions`
 * the RoPE positions. A query sees key j when j ≤ its index and mask[j] = 1; a query that sees
 * nothing (a pad row) gets an unspecified but finite output.
 */
export function referenceLogits(model: ReferenceDecoder, ids: number[][], mask: number[][], positions: number[][]): Float64Array {
  const c = model.config;
  const { hiddenSize: C, numAttentionHeads: H, numKeyValueHeads: KVH, headDim: D, vocabSize: V, intermediateSize: I } = c;
  const T = ids[0].length;
  const logits = new Float64Array(ids.length * T * V);
  const w = model.w;
  const sharedQKNorm = w('model.layers.0.self_attn.q_norm.weight').length === D; // GAIR fork layout
  const positionDivisor = c.ropeScaling?.type === 'linear' ? c.ropeScaling.factor : 1;
  if (c.ropeScaling && c.ropeScaling.type !== 'linear') throw new Error('reference: only linear rope scaling');

  // q/k LayerNorm of one head + (fork) the runtime permutation, then rotate-half RoPE
  const normAndRotate = (x: Vec, head: number, normWeight: Float32Array, normBias: Float32Array, position: number): Vec => {
    const n = layerNormNoAffine(x);
    const off = sharedQKNorm ? 0 : head * D;
    let y = n.map((v, d) => v * normWeight[off + d] + normBias[off + d]);
    if (sharedQKNorm) {
      // view(.., D/2, 2).transpose: [x0 x1 x2 x3 ...] → [x0 x2 ... | x1 x3 ...]
      const p = new Float64Array(D);
      for (let i = 0; i < D / 2; i++) {
        p[i] = y[2 * i];
        p[D / 2 + i] = y[2 * i + 1];
      }
      y = p;
    }
    const out = new Float64Array(D);
    for (let d = 0; d < D; d++) {
      const i = d % (D / 2);
      const angle = (position / positionDivisor) * (1 / Math.pow(c.ropeTheta, (2 * i) / D));
      const rotated = d < D / 2 ? -y[d + D / 2] : y[d - D / 2];
      out[d] = y[d] * Math.cos(angle) + rotated * Math.sin(angle);
    }
    return out;
  };

  for (let b = 0; b < ids.length; b++) {
    const embed = w('model.embed_tokens.weight');
    let xs: Vec[] = ids[b].map((id) => Float64Array.from(embed.subarray(id * C, (id + 1) * C)));

    for (let l = 0; l < c.numHiddenLayers; l++) {
      const p = `model.layers.${l}`;
      const bias = (name: string) => (c.attentionBias ? w(`${p}.self_attn.${name}.bias`) : undefined);
      const mlpBias = (name: string) => (c.mlpBias ? w(`${p}.mlp.${name}.bias`) : undefined);

      const attend = (inputs: Vec[]): Vec[] => {
        const qs: Vec[][] = [];
        const ks: Vec[][] = [];
        const vs: Vec[][] = [];
        inputs.forEach((x, t) => {
          const q = matvec(w(`${p}.self_attn.q_proj.weight`), x, H * D, bias('q_proj'));
          const k = matvec(w(`${p}.self_attn.k_proj.weight`), x, KVH * D, bias('k_proj'));
          const v = matvec(w(`${p}.self_attn.v_proj.weight`), x, KVH * D, bias('v_proj'));
          const pos = positions[b][t];
          qs.push(Array.from({ length: H }, (_, h) => normAndRotate(q.subarray(h * D, (h + 1) * D), h, w(`${p}.self_attn.q_norm.weight`), w(`${p}.self_attn.q_norm.bias`), pos)));
          ks.push(Array.from({ length: KVH }, (_, h) => normAndRotate(k.subarray(h * D, (h + 1) * D), h, w(`${p}.self_attn.k_norm.weight`), w(`${p}.self_attn.k_norm.bias`), pos)));
          vs.push(Array.from({ length: KVH }, (_, h) => v.subarray(h * D, (h + 1) * D)));
        });
        return inputs.map((_, t) => {
          const out = new Float64Array(H * D);
          for (let h = 0; h < H; h++) {
            const kvh = Math.floor(h / (H / KVH)); // repeat_kv: each kv head serves H/KVH consecutive query heads
            const visible = Array.from({ length: T }, (_, j) => j <= t && mask[b][j] === 1);
            const scores = Array.from({ length: T }, (_, j) => {
              let s = 0;
              for (let d = 0; d < D; d++) s += qs[t][h][d] * ks[j][kvh][d];
              return s / Math.sqrt(D);
            });
            const anyVisible = visible.some(Boolean);
            const max = Math.max(...scores.filter((_, j) => visible[j] || !anyVisible));
            const e = scores.map((s, j) => (visible[j] || !anyVisible ? Math.exp(s - max) : 0));
            const z = e.reduce((a, v) => a + v, 0);
            for (let j = 0; j < T; j++) for (let d = 0; d < D; d++) out[h * D + d] += (e[j] / z) * vs[j][kvh][d];
          }
          return matvec(w(`${p}.self_attn.o_proj.weight`), out, C, bias('o_proj'));
        });
      };
      const mlp = (x: Vec): Vec => {
        const gate = matvec(w(`${p}.mlp.gate_proj.weight`), x, I, mlpBias('gate_proj'));
        const up = matvec(w(`${p}.mlp.up_proj.weight`), x, I, mlpBias('up_proj'));
        return matvec(w(`${p}.mlp.down_proj.weight`), gate.map((g, i) => silu(g) * up[i]), C, mlpBias('down_proj'));
      };
      const normIn = (x: Vec) => rmsNorm(x, w(`${p}.input_layernorm.weight`), c.rmsNormEps);
      const normPost = (x: Vec) => rmsNorm(x, w(`${p}.post_attention_layernorm.weight`), c.rmsNormEps);
      const add = (a: Vec, d: Vec) => a.map((v, i) => v + d[i]);

      if (c.swinNorm) {
        const a = attend(xs);
        xs = xs.map((x, t) => add(x, normIn(a[t])));
        xs = xs.map((x) => add(x, normPost(mlp(x))));
      } else {
        const a = attend(xs.map(normIn));
        xs = xs.map((x, t) => add(x, a[t]));
        xs = xs.map((x) => add(x, mlp(normPost(x))));
      }
    }

    const head = c.tieWordEmbeddings ? w('model.embed_tokens.weight') : w('lm_head.weight');
    xs.forEach((x, t) => logits.set(matvec(head, rmsNorm(x, w('model.norm.weight'), c.rmsNormEps), V), (b * T + t) * V));
  }
  return logits;
}
