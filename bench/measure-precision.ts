/**
 * fp32 vs int8 / int4 (MatMulNBits, block 32) on one checkpoint, CPU: converts the checkpoint into
 * bundles in a temporary directory, then over a fixed set of prompts compares every next-token
 * distribution with fp32's (top-1 agreement, mean KL(fp32 ‖ quantized)), and times greedy text
 * generation (batch 1, interleaved rounds, median). Prints one JSON line.
 * Random weights make flat next-token distributions whose top-1 flips on small changes, so on the
 * bench's random checkpoints mean KL is the steadier figure.
 *
 *   npx tsx bench/measure-precision.ts <HF checkpoint dir>
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compileConstraints } from '../model/constraints.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import { DEFAULT_SAMPLING, type SequenceRequest } from '../contract/generation-request.ts';
import { loadEngine } from '../sidecar/engine/generation-engine.ts';
import { openModel } from '../sidecar/engine/model-source.ts';
import { TextModel } from '../sidecar/engine/text-model.ts';
import type { WeightDtype } from '../sidecar/graphs/precision.ts';
import { median } from './median.ts';
import { logitAgreement } from './logit-agreement.ts';

// a type, not an interface: the bench report takes it as a group of figures (an index signature)
export type PrecisionFigure = {
  /** The weight files alone, and the whole directory (graphs, tokenizer, config too). */
  weights_mb: number;
  bundle_mb: number;
  /** Over 8 prompts × 32 positions: how often the most likely next token is fp32's, and KL(fp32 ‖ this). */
  top1_agreement: number;
  mean_kl: number;
  /** Greedy text generation, batch 1, prefill included; median over interleaved rounds. */
  text_tokens_per_s: number;
};

interface Variant {
  key: string;
  label: string;
  dtype: WeightDtype;
  accuracyLevel?: number;
}

// int8 at accuracy_level 0 is left out: ONNX Runtime's CPU kernel runs it about 50× slower, which would
// make this part minutes longer (docs/benchmarks.md, "MatMulNBits accuracy level on CPU")
const VARIANTS: Variant[] = [
  { key: 'fp32', label: 'fp32', dtype: 'fp32' },
  { key: 'int8', label: 'int8 (accuracy_level 4)', dtype: 'int8', accuracyLevel: 4 },
  { key: 'int4', label: 'int4 (accuracy_level 4)', dtype: 'int4', accuracyLevel: 4 },
  { key: 'int4_level0', label: 'int4 (accuracy_level 0)', dtype: 'int4', accuracyLevel: 0 },
];

/** What each key of measurePrecision's answer is. */
export const PRECISION_LABELS: Record<string, string> = {
  hf_dir: 'HF directory (bf16 → fp32 at load)',
  ...Object.fromEntries(VARIANTS.map((v) => [v.key, v.label])),
};

/** 8 prompts × 32 tokens of text ids, the same on every run (a fixed LCG). */
function prompts(vocabStart: number, vocabEnd: number): number[][] {
  let s = 12345;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Array.from({ length: 8 }, () => [0, ...Array.from({ length: 31 }, () => vocabStart + Math.floor(next() * (vocabEnd - vocabStart)))]);
}

async function distributions(dir: string, batch: number[][]): Promise<Float32Array> {
  const model = await TextModel.load(openModel(dir));
  const out = await model.forward({ inputIds: batch });
  await model.release();
  return out.logits;
}

/** Greedy text tokens per second, batch 1, after a warm-up. */
async function textSpeed(dir: string, tokens: number, promptIds: number[]): Promise<number> {
  const generator = await loadEngine(openModel(dir));
  const request = (): SequenceRequest => ({
    promptIds,
    constraints: compileConstraints(generator.config, 'text'),
    maxNewTokens: tokens,
    text: { ...DEFAULT_SAMPLING.text, greedy: true },
    image: { ...DEFAULT_SAMPLING.image },
    repetitionPenalty: 1,
    guidance: { text: 1, image: 1 },
    seed: 0,
    // never stop early: the comparison is per token
    logitBias: { [generator.config.eosTokenId]: -1e9 },
  });
  for await (const _ of generator.generate([request()], { chunkSize: 16 }));
  const start = performance.now();
  let made = 0;
  for await (const e of generator.generate([request()], { chunkSize: 16 })) if (e.type === 'done') made = e.tokens.length;
  const seconds = (performance.now() - start) / 1000;
  await generator.release();
  return made / seconds;
}

const mb = (bytes: number) => bytes / 2 ** 20;
const dirBytes = (dir: string) => fs.readdirSync(dir).reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0);
const weightBytes = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') && !f.startsWith('goldens')).reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0);

/** The HF directory (the reference) and each quantized variant, by key (PRECISION_LABELS). */
export async function measurePrecision(hfDir: string, opts: { tokens?: number; rounds?: number } = {}): Promise<Record<string, PrecisionFigure>> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-precision-'));
  try {
    const config = openModel(hfDir).checkpoint.config!;
    const batch = prompts(Math.min(16388, config.vocabSize - 1000), Math.min(16920, config.vocabSize));
    const V = config.vocabSize;
    const reference = await distributions(hfDir, batch);
    const dirs: string[] = [];
    const quality: { kl: number; top1: number }[] = [];
    for (const v of VARIANTS) {
      const dir = path.join(tmp, v.key);
      await writeBundle({ from: hfDir, out: dir, precision: { dtype: v.dtype, target: 'cpu' }, accuracyLevel: v.accuracyLevel });
      dirs.push(dir);
      quality.push(logitAgreement(reference, await distributions(dir, batch), V));
    }
    // speed in interleaved rounds (every variant once per round, median over rounds): the machine is shared
    const all = [hfDir, ...dirs];
    const speeds: number[][] = all.map(() => []);
    for (let round = 0; round < (opts.rounds ?? 3); round++) {
      for (let i = 0; i < all.length; i++) speeds[i].push(await textSpeed(all[i], opts.tokens ?? 32, batch[0]));
    }
    const figure = (dir: string, i: number, q: { kl: number; top1: number }): PrecisionFigure => ({
      weights_mb: mb(weightBytes(dir)),
      bundle_mb: mb(dirBytes(dir)),
      top1_agreement: q.top1,
      mean_kl: q.kl,
      text_tokens_per_s: median(speeds[i]),
    });
    return {
      hf_dir: figure(hfDir, 0, { top1: 1, kl: 0 }),
      ...Object.fromEntries(VARIANTS.map((v, i) => [v.key, figure(dirs[i], i + 1, quality[i])])),
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: measure-precision.ts <HF checkpoint dir>');
  process.stdout.write(JSON.stringify(await measurePrecision(dir)) + '\n');
}
