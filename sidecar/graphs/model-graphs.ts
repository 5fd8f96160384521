import { imageVocabulary } from '../../model/vocabulary.ts';
import type { BuiltModel } from '../onnx/graph-builder.ts';
import type { Checkpoint } from '../weights/checkpoint.ts';
import { buildDecoderGraph, decoderWeights, type DecoderWeightOptions, type DecoderWeights } from './decoder.ts';
import { buildHeadGraph } from './head-graph.ts';
import { imageTokenRange } from './head-inputs.ts';
import { buildStepGraph } from './step-decoder.ts';
import { activationType, DEFAULT_PRECISION, refuseCudaFp32, type Precision } from './precision.ts';
import { buildVQDecoder, buildVQEncoder } from './vqvae.ts';

/** Every ONNX graph a loaded model runs, by the file name a bundle stores it under (without .onnx). */
export const GRAPH_NAMES = ['decoder', 'prefill', 'step', 'head-full', 'head-image', 'vq-encoder', 'vq-decoder'] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];

/**
 * One graph of a checkpoint for one precision: the decoder with all logits (forward), the prefill
 * (last position's logits), engine v2's step and heads (docs/engine-v2.md), and the VQ-VAE, which
 * stays float32 on every target. `head-image` is undefined when the image tokens are not one id range.
 */
export function buildModelGraph(ckpt: Checkpoint, name: GraphName, precision: Precision = DEFAULT_PRECISION, weights?: DecoderWeights | DecoderWeightOptions): BuiltModel | undefined {
  if (name === 'vq-encoder') return buildVQEncoder(ckpt);
  if (name === 'vq-decoder') return buildVQDecoder(ckpt);
  const w = weights && 'layers' in weights ? weights : decoderWeights(ckpt, weights);
  const floatType = activationType(precision);
  if (name === 'step' || name === 'head-full' || name === 'head-image') refuseCudaFp32(precision, `${ckpt.dir}: the ${name} graph`);
  switch (name) {
    case 'decoder':
      return buildDecoderGraph(w, { floatType });
    case 'prefill':
      return buildDecoderGraph(w, { floatType, logits: 'last' });
    case 'step':
      return buildStepGraph(w, { floatType });
    case 'head-full':
      return buildHeadGraph(w, 'full', { floatType });
    case 'head-image':
      return imageTokenRange(imageVocabulary(w.config).codeToToken) ? buildHeadGraph(w, 'image', { floatType }) : undefined;
  }
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
