import type { GenerationEngine } from '../sidecar/engine/generation-engine.ts';
import type { BenchPlan } from './bench-plan.ts';
import { benchRequest } from './bench-request.ts';
import { median } from './median.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';
import { timeImageTokens, timeTextTokens } from './timed-generation.ts';

/** The engine's rows in the bench (docs/engine-v2.md, issue 16's proof). */
export interface EngineRows {
  text_tok_s_ctx50: number;
  text_tok_s_ctx1000: number;
  image_tok_s_guided: number;
  image_tok_s_unguided: number;
  /** Time per image token with guidance over without. */
  cfg_cost_ratio: number;
  /** Host↔runtime bytes (in + out) per generated token, text at a 100- and a 1000-token context. */
  bytes_per_token_ctx100: number;
  bytes_per_token_ctx1000: number;
  first_text_token_ms: number;
  /**
   * Text speed at context 1000 over context 50, the median of each round's own ratio: the two rows run
   * back to back, so a slow spell of the machine that moves one round's every row cancels here.
   */
  text_ctx1000_over_ctx50: number;
}

/**
 * Every row for the engine, in rounds (each round runs every row once, so a slow spell of the
 * machine moves every row alike); medians over rounds.
 */
export async function measureEngineRows(engine: GenerationEngine, plan: BenchPlan, log: (line: string) => void): Promise<EngineRows> {
  const config = engine.config;
  const imageTokens = plan.imageTokens;
  const prompt = (length: number) => syntheticPrompt(config, length);
  const text = async (context: number) => {
    const span = await timeTextTokens(engine, benchRequest(config, { promptIds: prompt(context), mode: 'text', maxNewTokens: plan.textTokens, guided: false }), undefined);
    return (1000 * span.tokens) / span.ms;
  };
  const image = async (guided: boolean) => {
    let tokens = 0;
    let ms = 0;
    for (let i = 0; i < plan.imageRuns; i++) {
      const span = await timeImageTokens(engine, benchRequest(config, { promptIds: prompt(plan.promptTokens), mode: 'image', maxNewTokens: config.imageSeqLength + 2, guided }), imageTokens, undefined);
      tokens += span.tokens;
      ms += span.ms;
    }
    return (1000 * tokens) / ms;
  };
  const firstToken = async () => {
    const start = performance.now();
    for await (const ev of engine.generate([benchRequest(config, { promptIds: prompt(plan.firstTokenPrompt), mode: 'text', maxNewTokens: 8, guided: false })])) {
      if (ev.type === 'text') return performance.now() - start;
    }
    throw new Error('no text event');
  };
  const timed: Record<string, () => Promise<number>> = {
    text_tok_s_ctx50: () => text(50),
    text_tok_s_ctx1000: () => text(1000),
    image_tok_s_guided: () => image(true),
    image_tok_s_unguided: () => image(false),
    first_text_token_ms: firstToken,
  };
  await text(8); // a session's first runs allocate
  const samples = new Map(Object.keys(timed).map((k) => [k, [] as number[]]));
  for (let round = 1; round <= plan.rounds; round++) {
    for (const [key, run] of Object.entries(timed)) samples.get(key)!.push(await run());
    log(`round ${round}: ${Object.keys(timed).map((key) => `${key} ${samples.get(key)!.at(-1)!.toFixed(1)}`).join(', ')}`);
  }
  const m = (key: string) => median(samples.get(key)!);
  const rows: EngineRows = {
    text_tok_s_ctx50: m('text_tok_s_ctx50'),
    text_tok_s_ctx1000: m('text_tok_s_ctx1000'),
    image_tok_s_guided: m('image_tok_s_guided'),
    image_tok_s_unguided: m('image_tok_s_unguided'),
    cfg_cost_ratio: m('image_tok_s_unguided') / m('image_tok_s_guided'),
    bytes_per_token_ctx100: await bytesPerToken(engine, prompt(100), plan),
    bytes_per_token_ctx1000: await bytesPerToken(engine, prompt(1000), plan),
    first_text_token_ms: m('first_text_token_ms'),
    text_ctx1000_over_ctx50: median(samples.get('text_tok_s_ctx1000')!.map((v, round) => v / samples.get('text_tok_s_ctx50')![round])),
  };
  log(`engine: ${Object.entries(rows).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  return rows;
}

/** Bytes per token over the steady part of a text run (from its 5th token to its last). */
async function bytesPerToken(engine: GenerationEngine, promptIds: number[], plan: BenchPlan): Promise<number> {
  const config = engine.config;
  let before: typeof engine.stats | undefined;
  let tokens = 0;
  for await (const ev of engine.generate([benchRequest(config, { promptIds, mode: 'text', maxNewTokens: plan.transferTokens + 8, guided: true })])) {
    if (ev.type !== 'text') continue;
    tokens += ev.tokens.length;
    before ??= tokens >= 5 ? { ...engine.stats } : undefined;
  }
  const after = engine.stats;
  if (!before || after.tokens === before.tokens) throw new Error('bytesPerToken: the text ended too early');
  return (after.bytesIn - before.bytesIn + after.bytesOut - before.bytesOut) / (after.tokens - before.tokens);
}
