import type { GenerationEngine } from '../sidecar/engine/generation-engine.ts';
import type { BenchPlan } from './bench-plan.ts';
import { benchRequest } from './bench-request.ts';
import { median } from './median.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';
import { timeImageTokens, timeTextTokens, type ChunkSize, type Span } from './timed-generation.ts';

export interface Throughput {
  /** Guidance at its defaults (3.0/1.2), the in-graph loop with its default chunk. */
  image_tok_s_loop: number;
  /** Guidance at its defaults, one session.run per token (chunkSize 1). */
  image_tok_s_per_token: number;
  image_tok_s_loop_unguided: number;
  image_tok_s_per_token_unguided: number;
  text_tok_s_loop: number;
  text_tok_s_per_token: number;
  text_tok_s_loop_unguided: number;
  text_tok_s_per_token_unguided: number;
  /** Time per image token with guidance / without, in-graph loop. */
  cfg_cost_ratio: number;
  cfg_cost_ratio_per_token: number;
}

interface Variant {
  kind: 'image' | 'text';
  path: 'loop' | 'per_token';
  guided: boolean;
}

const chunkOf = (v: Variant): ChunkSize => (v.path === 'loop' ? undefined : 1);
const keyOf = (v: Variant) => `${v.kind}_tok_s_${v.path}${v.guided ? '' : '_unguided'}` as keyof Throughput;

// One round runs every variant once, alternating loop / per-token and guided / unguided, so a
// slow spell of the machine hits both sides of each comparison.
const ROUND: Variant[] = [
  { kind: 'image', path: 'loop', guided: true },
  { kind: 'image', path: 'per_token', guided: true },
  { kind: 'image', path: 'loop', guided: false },
  { kind: 'image', path: 'per_token', guided: false },
  { kind: 'text', path: 'loop', guided: true },
  { kind: 'text', path: 'per_token', guided: true },
  { kind: 'text', path: 'loop', guided: false },
  { kind: 'text', path: 'per_token', guided: false },
];

/**
 * Image and text tokens per second, guidance on and off, in-graph loop and per-token baseline.
 * Image runs use image mode (the prompt ends in boi; with guidance the image-only and
 * unconditional rows run beside it) and stop after `plan.imageTokens` tokens; text runs use text
 * mode (guidance never applies to text tokens, so its two settings should agree). When an image
 * is shorter than that (tiny: 16 tokens), `plan.imageRuns` images are timed and summed. One
 * untimed round with short runs comes first: a session's first runs allocate.
 */
export async function measureThroughput(generator: GenerationEngine, plan: BenchPlan, log: (line: string) => void): Promise<Throughput> {
  const config = generator.config;
  const width = config.vq.quantStateDims[1];
  const prompt = syntheticPrompt(config, plan.promptTokens);
  const image = async (v: Variant, tokens: number, runs: number): Promise<Span> => {
    const total = { tokens: 0, ms: 0 };
    for (let i = 0; i < runs; i++) {
      const request = benchRequest(config, { promptIds: prompt, mode: 'image', maxNewTokens: config.imageSeqLength + 2, guided: v.guided });
      const span = await timeImageTokens(generator, request, tokens, chunkOf(v));
      total.tokens += span.tokens;
      total.ms += span.ms;
    }
    return total;
  };
  const text = (v: Variant, tokens: number): Promise<Span> =>
    timeTextTokens(generator, benchRequest(config, { promptIds: prompt, mode: 'text', maxNewTokens: tokens, guided: v.guided }), chunkOf(v));
  const run = (v: Variant, short: boolean) =>
    v.kind === 'image' ? image(v, short ? width : plan.imageTokens, short ? 1 : plan.imageRuns) : text(v, short ? 2 * width : plan.textTokens);

  for (const v of ROUND) await run(v, true);

  const msPerToken = new Map<Variant, number[]>(ROUND.map((v) => [v, []]));
  for (let round = 1; round <= plan.rounds; round++) {
    const line: string[] = [];
    for (const v of ROUND) {
      const span = await run(v, false);
      msPerToken.get(v)!.push(span.ms / span.tokens);
      line.push(`${keyOf(v).replace('_tok_s', '')} ${((1000 * span.tokens) / span.ms).toFixed(1)}`);
    }
    log(`throughput round ${round}/${plan.rounds} (tok/s): ${line.join(', ')}`);
  }

  const ms = new Map(ROUND.map((v) => [keyOf(v), median(msPerToken.get(v)!)]));
  const perSecond = (key: keyof Throughput) => 1000 / ms.get(key)!;
  const result: Throughput = {
    image_tok_s_loop: perSecond('image_tok_s_loop'),
    image_tok_s_per_token: perSecond('image_tok_s_per_token'),
    image_tok_s_loop_unguided: perSecond('image_tok_s_loop_unguided'),
    image_tok_s_per_token_unguided: perSecond('image_tok_s_per_token_unguided'),
    text_tok_s_loop: perSecond('text_tok_s_loop'),
    text_tok_s_per_token: perSecond('text_tok_s_per_token'),
    text_tok_s_loop_unguided: perSecond('text_tok_s_loop_unguided'),
    text_tok_s_per_token_unguided: perSecond('text_tok_s_per_token_unguided'),
    cfg_cost_ratio: ms.get('image_tok_s_loop')! / ms.get('image_tok_s_loop_unguided')!,
    cfg_cost_ratio_per_token: ms.get('image_tok_s_per_token')! / ms.get('image_tok_s_per_token_unguided')!,
  };
  log(
    `throughput medians over ${plan.rounds} rounds (${plan.imageRuns} × ${plan.imageTokens} image tokens, ${plan.textTokens} text tokens, prompt ${plan.promptTokens}): ` +
      `image loop ${result.image_tok_s_loop.toFixed(1)} vs per-token ${result.image_tok_s_per_token.toFixed(1)} tok/s with guidance, ` +
      `${result.image_tok_s_loop_unguided.toFixed(1)} vs ${result.image_tok_s_per_token_unguided.toFixed(1)} without; ` +
      `text loop ${result.text_tok_s_loop.toFixed(1)} vs per-token ${result.text_tok_s_per_token.toFixed(1)}; ` +
      `cfg cost ×${result.cfg_cost_ratio.toFixed(2)} (loop), ×${result.cfg_cost_ratio_per_token.toFixed(2)} (per-token)`,
  );
  return result;
}
