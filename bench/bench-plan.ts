import type { AnoleConfig } from '../model/config.ts';
import type { PresetName } from '../sidecar/weights/random-checkpoint.ts';

/**
 * How much each measurement does on a preset. Tiny runs are milliseconds, so they repeat more;
 * small is sized so the whole bench stays under ~10 minutes on 2 cores: its throughput is timed
 * over the first 128 image tokens of an image rather than all 1024, and one whole image is made once.
 */
export interface BenchPlan {
  /** Rounds of the engine's rows (measure-engine-rows.ts); medians are taken over rounds. */
  rounds: number;
  /** Image tokens timed per run: a whole number of grid rows, at most one image. */
  imageTokens: number;
  /** Runs summed into one image measurement, so that at least ~128 tokens are timed even when an image is smaller. */
  imageRuns: number;
  /** Text tokens per run (the first chunk is not timed, so this spans several chunks). */
  textTokens: number;
  /** Prompt length of the throughput runs. */
  promptTokens: number;
  /** Prompt length for prefill, and the context of the single-step forward. */
  prefillTokens: number;
  prefillReps: number;
  stepReps: number;
  /** Timed VQ encodes and decodes (after one untimed call that creates the session). */
  vqReps: number;
  /** Text tokens measured for the host↔runtime bytes per token (after the first few), at contexts 100 and 1000. */
  transferTokens: number;
  /** Prompt length for the time to first text token. */
  firstTokenPrompt: number;
  /** Whole images generated (and decoded) for seconds per image. */
  wholeImages: number;
}

export function benchPlan(preset: PresetName, config: AnoleConfig): BenchPlan {
  const width = config.vq.quantStateDims[1];
  const rows = (tokens: number) => Math.min(config.imageSeqLength, Math.ceil(tokens / width) * width);
  const cheap = preset === 'tiny';
  return {
    rounds: 5,
    imageTokens: rows(128),
    imageRuns: Math.ceil(128 / rows(128)),
    textTokens: Math.max(3 * width, 48),
    promptTokens: 32,
    prefillTokens: 256,
    prefillReps: cheap ? 9 : 5,
    stepReps: cheap ? 31 : 15,
    vqReps: cheap ? 5 : 2,
    transferTokens: 32,
    firstTokenPrompt: 50,
    wholeImages: cheap ? 3 : 1,
  };
}
