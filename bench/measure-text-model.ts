import { TextModel } from '../sidecar/engine/text-model.ts';
import type { Checkpoint } from '../sidecar/weights/checkpoint.ts';
import type { BenchPlan } from './bench-plan.ts';
import { median } from './median.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';

export interface TextModelTimes {
  prefill_ms_per_token: number;
  step_ms_per_token: number;
  text_model_load_s: number;
}

/**
 * The text decoder alone, one session.run per forward: a prefill of `prefillTokens` tokens, and a
 * single-token forward on that prompt's KV cache (each step reuses the same cache, so the context
 * stays at prefillTokens + 1). Loaded with logits 'last' as the generator's prefill is: a prompt
 * needs only its last position's logits, and the full [T, vocab] head would dominate the time.
 */
export async function measureTextModel(ckpt: Checkpoint, plan: BenchPlan, log: (line: string) => void): Promise<TextModelTimes> {
  const loadStart = performance.now();
  const model = await TextModel.load(ckpt, { logits: 'last' });
  const loadMs = performance.now() - loadStart;
  try {
    const prompt = syntheticPrompt(model.config, plan.prefillTokens);
    const time = async <T>(run: () => Promise<T>) => {
      const start = performance.now();
      const out = await run();
      return { ms: performance.now() - start, out };
    };
    const { out: prefilled } = await time(() => model.forward({ inputIds: [prompt] })); // warm-up
    const prefills: number[] = [];
    for (let i = 0; i < plan.prefillReps; i++) prefills.push((await time(() => model.forward({ inputIds: [prompt] }))).ms);

    const next = [[prompt[prompt.length - 1]]];
    await model.forward({ inputIds: next, cache: prefilled.cache }); // warm-up
    const steps: number[] = [];
    for (let i = 0; i < plan.stepReps; i++) steps.push((await time(() => model.forward({ inputIds: next, cache: prefilled.cache }))).ms);

    const result = {
      prefill_ms_per_token: median(prefills) / plan.prefillTokens,
      step_ms_per_token: median(steps),
      text_model_load_s: loadMs / 1000,
    };
    log(`text model: load ${(loadMs / 1000).toFixed(1)} s; prefill ${plan.prefillTokens} tokens ${median(prefills).toFixed(1)} ms ` +
      `(${result.prefill_ms_per_token.toFixed(3)} ms/token); step at context ${plan.prefillTokens + 1} ${result.step_ms_per_token.toFixed(2)} ms`);
    return result;
  } finally {
    await model.release();
  }
}
