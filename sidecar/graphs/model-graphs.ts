import type { BuiltModel } from '../onnx/graph-builder.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import { buildDecoderGraph, decoderWeights, type DecoderWeightOptions } from './decoder.ts';
import { buildGenerationLoop, imageTokenRange } from './generation-loop.ts';
import { activationType, DEFAULT_PRECISION, type Precision } from './precision.ts';
import { buildVQDecoder, buildVQEncoder } from './vqvae.ts';
import { imageVocabulary } from '../../model/vocabulary.ts';

/** Every ONNX graph a loaded model runs, by the file name a bundle stores it under (without .onnx). */
export const GRAPH_NAMES = ['decoder', 'prefill', 'loop-full', 'loop-image', 'vq-encoder', 'vq-decoder'] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];

/**
 * The graphs of a full Anole checkpoint for one precision: the decoder with all logits (forward),
 * the prefill (last position's logits), the two generation loops, and the VQ-VAE, which stays
 * float32 on every target. `loop-image` is absent when the image tokens are not one id range.
 */
export function buildModelGraphs(ckpt: Checkpoint, precision: Precision = DEFAULT_PRECISION, weightOpts: DecoderWeightOptions = {}): Partial<Record<GraphName, BuiltModel>> {
  const w = decoderWeights(ckpt, weightOpts);
  const floatType = activationType(precision);
  const hasImageHead = imageTokenRange(imageVocabulary(w.config).codeToToken) !== undefined;
  return {
    decoder: buildDecoderGraph(w, { floatType }),
    prefill: buildDecoderGraph(w, { floatType, logits: 'last' }),
    'loop-full': buildGenerationLoop(w, 'full', { floatType }),
    ...(hasImageHead ? { 'loop-image': buildGenerationLoop(w, 'image', { floatType }) } : {}),
    'vq-encoder': buildVQEncoder(ckpt),
    'vq-decoder': buildVQDecoder(ckpt),
  };
}
