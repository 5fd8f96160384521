import { ENGINE_NAME, loadEngine } from '../sidecar/engine/generation-engine.ts';
import { decoderWeights } from '../sidecar/graphs/decoder.ts';
import { buildStepGraph } from '../sidecar/graphs/step-decoder.ts';
import { runNodeCount } from '../sidecar/onnx/run-nodes.ts';
import { ImageCodec } from '../sidecar/engine/image-codec.ts';
import { openCheckpoint } from '../sidecar/weights/checkpoint.ts';
import type { PresetName } from '../sidecar/weights/random-checkpoint.ts';
import { benchPlan } from './bench-plan.ts';
import { measureEngineRows } from './measure-engine-rows.ts';
import { measureWholeImage } from './measure-image.ts';
import { measureTextModel } from './measure-text-model.ts';
import { measureVQ } from './measure-vq.ts';

/** Times one part of the bench under a name (run-bench.ts keeps each part's seconds). */
export type TimedPart = <T>(name: string, run: () => Promise<T> | T) => Promise<T>;

/**
 * The measurements on one loaded text model, image codec and engine, in this process: the text
 * model's costs, VQ encode/decode, then the engine's rows (measure-engine-rows.ts) and whole images
 * (measure-image.ts). `image_tok_s_loop` keeps its old name for the guided image rate.
 */
export async function measureEngine(preset: PresetName, dir: string, part: TimedPart, log: (line: string) => void) {
  const ckpt = openCheckpoint(dir);
  const plan = benchPlan(preset, ckpt.config!);
  const textModel = await part('text_model', () => measureTextModel(ckpt, plan, log));
  const codec = await ImageCodec.load(ckpt);
  try {
    const vq = await part('vq', () => measureVQ(codec, plan, log));
    const engine = await part('generator_load', () => loadEngine(ckpt));
    try {
      const rows = await part('engine', () => measureEngineRows(engine, { ...plan, rounds: Math.min(plan.rounds, 3) }, log));
      const wholeImage = await part('whole_image', () => measureWholeImage(engine, codec, plan, log));
      return {
        ...textModel,
        ...vq,
        engine: ENGINE_NAME,
        ...rows,
        ...wholeImage,
        image_tok_s_loop: rows.image_tok_s_guided,
        nodes_per_layer: stepNodesPerLayer(dir),
      };
    } finally {
      await engine.release();
    }
  } finally {
    await codec.release();
  }
}

/** Nodes a decode step runs per decoder layer (the step graph's, layers 2 against 1). */
function stepNodesPerLayer(dir: string): number {
  const w = decoderWeights(openCheckpoint(dir));
  const withLayers = (n: number) => buildStepGraph({ ...w, layers: w.layers.slice(0, n) });
  return runNodeCount(withLayers(2)) - runNodeCount(withLayers(1));
}
