import { imageVocabulary } from '../../model/vocabulary.ts';
import type { BuiltModel } from '../onnx/graph-builder.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import { buildDecoderGraph, decoderWeights, type DecoderWeightOptions, type DecoderWeights } from './decoder.ts';
import { buildGenerationLoop, imageTokenRange } from './generation-loop.ts';
import { buildGeneratorGraph } from './generator-graph.ts';
import { buildHeadGraph } from './head-graph.ts';
import { buildStepGraph } from './step-decoder.ts';
import { activationType, DEFAULT_PRECISION, type Precision } from './precision.ts';
import { buildVQDecoder, buildVQEncoder } from './vqvae.ts';

/** Every ONNX graph a loaded model runs, by the file name a bundle stores it under (without .onnx). */
export const GRAPH_NAMES = ['decoder', 'prefill', 'loop-full', 'loop-image', 'generator', 'step', 'head-full', 'head-image', 'vq-encoder', 'vq-decoder'] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];

/**
 * One graph of a checkpoint for one precision: the decoder with all logits (forward), the prefill
 * (last position's logits), the two generation loops, the generator (prefill and both loops in one
 * graph, what the Loop engine runs), engine v2's step and heads, and the VQ-VAE, which stays
 * float32 on every target.
 * `loop-image` is undefined when the image tokens are not one id range.
 */
export function buildModelGraph(ckpt: Checkpoint, name: GraphName, precision: Precision = DEFAULT_PRECISION, weights?: DecoderWeights | DecoderWeightOptions): BuiltModel | undefined {
  if (name === 'vq-encoder') return buildVQEncoder(ckpt);
  if (name === 'vq-decoder') return buildVQDecoder(ckpt);
  const w = weights && 'layers' in weights ? weights : decoderWeights(ckpt, weights);
  const floatType = activationType(precision);
  switch (name) {
    case 'decoder':
      return buildDecoderGraph(w, { floatType });
    case 'prefill':
      return buildDecoderGraph(w, { floatType, logits: 'last' });
    case 'loop-full':
      return buildGenerationLoop(w, 'full', { floatType });
    case 'loop-image':
      return imageTokenRange(imageVocabulary(w.config).codeToToken) ? buildGenerationLoop(w, 'image', { floatType }) : undefined;
    case 'generator':
      return buildGeneratorGraph(w, { floatType, imageHead: imageTokenRange(imageVocabulary(w.config).codeToToken) !== undefined });
    // engine v2 (docs/engine-v2.md); GroupQueryAttention has no float32 CUDA kernel, so a CUDA build needs half activations
    case 'step':
      return stepCapable(precision) ? buildStepGraph(w, { floatType }) : undefined;
    case 'head-full':
      return stepCapable(precision) ? buildHeadGraph(w, 'full', { floatType }) : undefined;
    case 'head-image':
      return stepCapable(precision) && imageTokenRange(imageVocabulary(w.config).codeToToken) ? buildHeadGraph(w, 'image', { floatType }) : undefined;
  }
}

/** Whether engine v2's graphs exist for a precision: on CUDA, GroupQueryAttention runs fp16 / bf16 only. */
export function stepCapable(p: Precision): boolean {
  return p.target === 'cpu' || p.dtype !== 'fp32';
}

/** All graphs of a full Anole checkpoint (the decoder weights are resolved once). */
export function buildModelGraphs(ckpt: Checkpoint, precision: Precision = DEFAULT_PRECISION, weightOpts: DecoderWeightOptions = {}): Partial<Record<GraphName, BuiltModel>> {
  const w = decoderWeights(ckpt, weightOpts);
  const out: Partial<Record<GraphName, BuiltModel>> = {};
  for (const name of GRAPH_NAMES) {
    const built = buildModelGraph(ckpt, name, precision, w);
    if (built) out[name] = built;
  }
  return out;
}
