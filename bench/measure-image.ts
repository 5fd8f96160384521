import fs from 'node:fs';
import type { GenerationEngine } from '../sidecar/engine/generation-engine.ts';
import type { ImageCodec } from '../sidecar/engine/image-codec.ts';
import type { BenchPlan } from './bench-plan.ts';
import { benchRequest } from './bench-request.ts';
import { median } from './median.ts';
import { syntheticPrompt } from './synthetic-prompt.ts';
import { timeWholeImage } from './timed-generation.ts';

export interface WholeImage {
  /** One complete image with guidance on (default chunk), prefill and VQ decode included. */
  seconds_per_image: number;
  image_generation_s: number;
  image_decode_s: number;
  /** Image tokens/s over the whole image (the context grows to prompt + 1026). */
  image_tok_s_whole_image: number;
  /** The process's peak RSS while the images ran (Linux: VmHWM, reset first). */
  whole_image_peak_rss_mb: number;
}

/** Seconds for whole images as a user gets them: image mode, guidance at its defaults, then decode to pixels. */
export async function measureWholeImage(generator: GenerationEngine, codec: ImageCodec, plan: BenchPlan, log: (line: string) => void): Promise<WholeImage> {
  const config = generator.config;
  const prompt = syntheticPrompt(config, plan.promptTokens);
  const generation: number[] = [];
  const decode: number[] = [];
  if (fs.existsSync('/proc/self/clear_refs')) fs.writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM
  for (let i = 0; i < plan.wholeImages; i++) {
    const request = benchRequest(config, { promptIds: prompt, mode: 'image', maxNewTokens: config.imageSeqLength + 2, guided: true });
    const image = await timeWholeImage(generator, request, undefined);
    const start = performance.now();
    await codec.decode([image.codes]);
    decode.push(performance.now() - start);
    generation.push(image.ms);
  }
  const total = generation.map((g, i) => g + decode[i]);
  const result = {
    seconds_per_image: median(total) / 1000,
    image_generation_s: median(generation) / 1000,
    image_decode_s: median(decode) / 1000,
    image_tok_s_whole_image: (1000 * config.imageSeqLength) / median(generation),
    whole_image_peak_rss_mb: Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024,
  };
  log(`whole image (${config.imageSeqLength} tokens, guidance on): ${result.seconds_per_image.toFixed(2)} s = generation ${result.image_generation_s.toFixed(2)} s ` +
    `(${result.image_tok_s_whole_image.toFixed(1)} image tok/s) + decode ${result.image_decode_s.toFixed(2)} s` + (plan.wholeImages > 1 ? ` (median of ${plan.wholeImages})` : ''));
  return result;
}
