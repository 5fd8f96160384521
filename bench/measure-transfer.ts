import type { GenerationEngine } from '../sidecar/engine/generation-engine.ts';
import type { TransferStats } from '../sidecar/engine/generator.ts';
import type { BenchPlan } from './bench-plan.ts';
import { benchRequest } from './bench-request.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';
import { timeTextTokens, type ChunkSize } from './timed-generation.ts';

export interface Transfer {
  /** Host↔runtime bytes (in + out) per generated token at a ~1000-token context, in-graph loop. */
  bytes_per_token_ctx1000: number;
  /** The same for one session.run per token. */
  baseline_bytes_per_token_ctx1000: number;
  /** Text tokens/s at that context (after the first chunk), both paths. */
  text_tok_s_ctx1000_loop: number;
  text_tok_s_ctx1000_per_token: number;
}

/**
 * What crosses between JS and ONNX Runtime per generated token once the context is long: text
 * mode after a `transferContext`-token prompt. Bytes come from the generator's own `stats` (the
 * loop runs' feeds and outputs; the prompt's prefill is not in them), divided by the tokens the
 * run made. The loop makes whole chunks, at least as many tokens as the baseline.
 */
export async function measureTransfer(generator: GenerationEngine, plan: BenchPlan, log: (line: string) => void): Promise<Transfer> {
  const config = generator.config;
  const chunk = config.vq.quantStateDims[1]; // the generator's default chunk: one image row
  const prompt = syntheticPrompt(config, plan.transferContext);
  const measure = async (chunkSize: ChunkSize, tokens: number) => {
    const before: TransferStats = { ...generator.stats };
    const request = benchRequest(config, { promptIds: prompt, mode: 'text', maxNewTokens: tokens, guided: true });
    const span = await timeTextTokens(generator, request, chunkSize);
    const after = generator.stats;
    const bytes = after.bytesIn - before.bytesIn + (after.bytesOut - before.bytesOut);
    return { bytesPerToken: bytes / span.generated, runs: after.runs - before.runs, tokS: (1000 * span.tokens) / span.ms, generated: span.generated };
  };
  const loop = await measure(undefined, Math.max(2, Math.ceil(plan.transferTokens / chunk)) * chunk);
  const baseline = await measure(1, plan.transferTokens);

  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
  log(`context ${plan.transferContext}: loop ${mb(loop.bytesPerToken)}/token (${loop.generated} tokens, ${loop.runs} runs, ${loop.tokS.toFixed(1)} tok/s), ` +
    `per-token ${mb(baseline.bytesPerToken)}/token (${baseline.generated} tokens, ${baseline.runs} runs, ${baseline.tokS.toFixed(1)} tok/s)`);
  return {
    bytes_per_token_ctx1000: loop.bytesPerToken,
    baseline_bytes_per_token_ctx1000: baseline.bytesPerToken,
    text_tok_s_ctx1000_loop: loop.tokS,
    text_tok_s_ctx1000_per_token: baseline.tokS,
  };
}
