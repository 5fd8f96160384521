import { compileConstraints, type GenerationMode } from '../model/constraints.ts';
import type { AnoleConfig } from '../model/config.ts';
import { DEFAULT_SAMPLING, type SequenceRequest } from '../contract/generation-request.ts';

/** Every bench generation samples (greedy would not be the served workload) from this one seed. */
export const BENCH_SEED = 1;

const GUIDANCE_OFF = { text: 1, image: 1 };

/**
 * One sequence with the sampling defaults (text 1.0/0.9, image 0.7/0.9, repetition penalty 1.2),
 * guidance at its defaults (3.0/1.2) or off (1/1). EOS is suppressed so a text run always makes
 * exactly maxNewTokens tokens: every variant then times the same amount of work.
 */
export function benchRequest(
  config: AnoleConfig,
  opts: { promptIds: number[]; mode: GenerationMode; maxNewTokens: number; guided: boolean },
): SequenceRequest {
  return {
    promptIds: opts.promptIds,
    constraints: compileConstraints(config, opts.mode, [config.eosTokenId]),
    maxNewTokens: opts.maxNewTokens,
    text: { ...DEFAULT_SAMPLING.text },
    image: { ...DEFAULT_SAMPLING.image },
    repetitionPenalty: DEFAULT_SAMPLING.repetitionPenalty,
    guidance: opts.guided ? { ...DEFAULT_SAMPLING.guidance } : { ...GUIDANCE_OFF },
    seed: BENCH_SEED,
  };
}
