import { loadEngine } from '../sidecar/engine/generation-engine.ts';
import { decoderWeights } from '../sidecar/graphs/decoder.ts';
import { buildDecoderGraph } from '../sidecar/graphs/decoder.ts';
import { buildStepGraph } from '../sidecar/graphs/step-decoder.ts';
import { runNodeCount } from '../sidecar/onnx/run-nodes.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import type { PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { benchPlan } from './bench-plan.ts';
import { measureEngines } from './measure-engines.ts';
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
 * model's costs, VQ encode/decode, then the production engine (engine v2 on the CPU) against the
 * Loop engine, its baseline, on the same rows (measure-engines.ts); the Loop engine's own
 * loop-against-per-token figures (throughput, transfer, first token, whole image) stay under their
 * old keys, except the keys that report the production engine (image_tok_s_loop, cfg_cost_ratio,
 * bytes_per_token_ctx1000, seconds_per_image), whose Loop values move to `baseline`.
 */
export async function measureEngine(preset: PresetName, dir: string, part: TimedPart, log: (line: string) => void) {
  const ckpt = openCheckpoint(dir);
  const plan = benchPlan(preset, ckpt.config!);
  const textModel = await part('text_model', () => measureTextModel(ckpt, plan, log));
  const codec = await ImageCodec.load(ckpt);
  try {
    const vq = await part('vq', () => measureVQ(codec, plan, log));
    const production = await part('generator_load', () => loadEngine(ckpt));
    const loop = await loadEngine(ckpt, { engine: 'loop' });
    try {
      const compared = await part('engines', () =>
        measureEngines([{ name: 'production', engine: production }, { name: 'loop', engine: loop }], codec, { ...plan, rounds: Math.min(plan.rounds, 3) }, log),
      );
      const throughput = await part('throughput', () => measureThroughput(loop, plan, log));
      const transfer = await part('transfer', () => measureTransfer(loop, plan, log));
      const firstToken = await part('first_token', () => measureFirstToken(loop, plan, log));
      const wholeImage = await part('whole_image', () => measureWholeImage(loop, codec, plan, log));
      const layers = nodesPerLayer(dir);
      const { production: v2, loop: baseline } = compared;
      return {
        ...throughput,
        ...transfer,
        ...firstToken,
        ...wholeImage,
        ...textModel,
        ...vq,
        engine: production.name,
        ...v2,
        image_tok_s_loop: v2.image_tok_s_guided,
        nodes_per_layer: layers.step,
        baseline: {
          ...baseline,
          image_tok_s_loop: throughput.image_tok_s_loop,
          cfg_cost_ratio: throughput.cfg_cost_ratio,
          bytes_per_token_ctx1000: transfer.bytes_per_token_ctx1000,
          seconds_per_image: wholeImage.seconds_per_image,
          nodes_per_layer: layers.loop,
        },
      };
    } finally {
      await Promise.all([production.release(), loop.release()]);
    }
  } finally {
    await codec.release();
  }
}

/** Nodes a decode runs per decoder layer: engine v2's step graph, and the decoder forward the Loop's body repeats. */
function nodesPerLayer(dir: string): { step: number; loop: number } {
  const w = decoderWeights(openCheckpoint(dir));
  const withLayers = (n: number) => ({ ...w, layers: w.layers.slice(0, n) });
  const per = (build: (x: typeof w) => Parameters<typeof runNodeCount>[0]) => runNodeCount(build(withLayers(2))) - runNodeCount(build(withLayers(1)));
  return { step: per((x) => buildStepGraph(x)), loop: per((x) => buildDecoderGraph(x, { logits: 'last' })) };
}
