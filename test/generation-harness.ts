import { compileConstraints, type GenerationMode } from '../model/constraints.ts';
import type { AnoleConfig } from '../model/config.ts';
import { DEFAULT_SAMPLING, type SequenceRequest } from '../contract/generation-request.ts';

/** A generation request with the engine's default sampling (seed 1) and guidance, for tests. */
export function sequenceRequest(
  config: AnoleConfig,
  promptIds: number[],
  mode: GenerationMode,
  maxNewTokens: number,
  extra: Partial<SequenceRequest> = {},
): SequenceRequest {
  return {
    promptIds,
    constraints: compileConstraints(config, mode),
    maxNewTokens,
    text: { ...DEFAULT_SAMPLING.text },
    image: { ...DEFAULT_SAMPLING.image },
    repetitionPenalty: DEFAULT_SAMPLING.repetitionPenalty,
    guidance: { ...DEFAULT_SAMPLING.guidance },
    seed: 1,
    ...extra,
  };
}
