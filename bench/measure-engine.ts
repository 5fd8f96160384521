import { Generator } from '../sidecar/engine/generator.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import type { PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { benchPlan } from './bench-plan.ts';
import { measureFirstToken } from './measure-first-token.ts';
import { measureWholeImage } from './measure-image.ts';
import { measureTextModel } from './measure-text-model.ts';
import { measureThroughput } from './measure-throughput.ts';
import { measureTransfer } from './measure-transfer.ts';
import { measureVQ } from './measure-vq.ts';

/** Times one part of the bench under a name (run-bench.ts keeps each part's seconds). */
export type TimedPart = <T>(name: string, run: () => Promise<T> | T) => Promise<T>;

/**
 * The measurements on one loaded text model, image codec and generator, in this process: the text
 * model's costs, VQ encode/decode, generation throughput, bytes per token, time to first token and a
 * whole image.
 */
export async function measureEngine(preset: PresetName, dir: string, part: TimedPart, log: (line: string) => void) {
  const ckpt = openCheckpoint(dir);
  const plan = benchPlan(preset, ckpt.config!);
  const textModel = await part('text_model', () => measureTextModel(ckpt, plan, log));
  const codec = await ImageCodec.load(ckpt);
  try {
    const vq = await part('vq', () => measureVQ(codec, plan, log));
    const generator = await part('generator_load', () => Generator.load(ckpt));
    try {
      const throughput = await part('throughput', () => measureThroughput(generator, plan, log));
      const transfer = await part('transfer', () => measureTransfer(generator, plan, log));
      const firstToken = await part('first_token', () => measureFirstToken(generator, plan, log));
      const wholeImage = await part('whole_image', () => measureWholeImage(generator, codec, plan, log));
      return { ...throughput, ...transfer, ...firstToken, ...wholeImage, ...textModel, ...vq };
    } finally {
      await generator.release();
    }
  } finally {
    await codec.release();
  }
}
