import type { GenerationEngine } from '../sidecar/engine/generation-engine.ts';
import type { BenchPlan } from './bench-plan.ts';
import { benchRequest } from './bench-request.ts';
import { median } from './median.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';
import { timeFirstText, type ChunkSize } from './timed-generation.ts';

export interface FirstToken {
  /** Prompt prefill + the first chunk of the in-graph loop (its default chunk), until the first text event. */
  first_text_token_ms: number;
  /** The same with one session.run per token. */
  first_text_token_ms_per_token: number;
}

/**
 * Time to first text token for a `firstTokenPrompt`-token prompt in text mode: the loop reports
 * tokens only when its chunk ends, so its first token waits for a whole chunk. A/B rounds, medians.
 */
export async function measureFirstToken(generator: GenerationEngine, plan: BenchPlan, log: (line: string) => void): Promise<FirstToken> {
  const config = generator.config;
  const request = () =>
    benchRequest(config, { promptIds: syntheticPrompt(config, plan.firstTokenPrompt), mode: 'text', maxNewTokens: 2 * config.vq.quantStateDims[1], guided: true });
  const times: Record<'loop' | 'perToken', number[]> = { loop: [], perToken: [] };
  const paths: ['loop' | 'perToken', ChunkSize][] = [['loop', undefined], ['perToken', 1]];
  for (let round = 0; round < plan.firstTokenRounds; round++) {
    for (const [name, chunkSize] of paths) times[name].push(await timeFirstText(generator, request(), chunkSize));
  }
  const result = { first_text_token_ms: median(times.loop), first_text_token_ms_per_token: median(times.perToken) };
  log(`first text token (prompt ${plan.firstTokenPrompt}): loop ${result.first_text_token_ms.toFixed(1)} ms, per-token ${result.first_text_token_ms_per_token.toFixed(1)} ms ` +
    `(medians of ${plan.firstTokenRounds})`);
  return result;
}
