import { DataType, GraphBuilder, type BuiltModel, type DataTypeId } from '../onnx/graph-builder.ts';
import { cacheNames, emitDecoderForward, type DecoderWeights } from './decoder.ts';
import { emitGenerationLoop, LOOP_INPUTS as I, type ValueSpec } from './generation-loop.ts';

/** Which phase a run of the generator graph performs (its `phase` input). */
export const PHASE = { prefill: 0, loopFull: 1, loopImage: 2 } as const;

/**
 * Everything the generator runs, as ONE graph, so one ONNX Runtime session holds the weights once:
 * with a session per phase, each read, cast and prepacked its own copy (three copies of the
 * decoder in memory, three times the load time; on a GPU, three copies in device memory).
 *
 *   phase 0  prefill: input_ids, attention_mask, position_ids, empty past → the last position's
 *            hidden state [B, 1, C] and the caches (the other outputs echo their inputs); the
 *            lm-head runs in the chunk that samples from it, so the weights' one lm-head is the loop's;
 *   phase 1  a chunk of the full-vocabulary Loop (generation-loop.ts);
 *   phase 2  a chunk of the image-head Loop (when the image tokens are one id range).
 *
 * Both chunk Loops sit in the root graph, each with a trip count of 0 unless its phase runs, and
 * an If picks the phase's outputs. A Loop inside an If would be simpler, but ONNX Runtime prepacks
 * only the weights one graph level up: MatMulNBits two levels down dequantized every matrix on
 * every call (docs/benchmarks.md, "The generator's Loops sit in the root graph"). The price is one copy
 * of the carried state per chunk (the skipped Loop passes it through) and the If's copy of the
 * outputs. Every input must be fed on every run (the unused ones may be empty); outputs keep the
 * Loop's names (LOOP_OUTPUTS, present.*) in every phase.
 */
export function buildGeneratorGraph(w: DecoderWeights, opts: { floatType?: DataTypeId; imageHead?: boolean } = {}): BuiltModel {
  const g = new GraphBuilder('anole_generator');
  g.floatType = opts.floatType ?? DataType.FLOAT;
  const phase = g.input('phase', DataType.INT64, []);
  const inputIds = g.input('input_ids', DataType.INT64, ['batch', 'sequence']);
  const [isPrefill, isLoopFull, isLoopImage] = [PHASE.prefill, PHASE.loopFull, PHASE.loopImage].map((p) => g.op('Equal', [phase, g.int64(p)]));
  const stepsIf = (running: string) => g.op('Where', [running, I.steps, g.int64(0)]); // int64 scalar: 0 skips the Loop

  // the chunk loops, which also declare the shared inputs (the bias takes either width)
  const fullOut = emitGenerationLoop(g, g, w, 'full', { declareInputs: true, symbolicWidths: true, steps: stepsIf(isLoopFull), rename: (n) => g.fresh(n) });
  const final = fullOut.map(([name, type, dims]): ValueSpec => [finalName(name), type, dims]);
  const pick = (branch: GraphBuilder, specs: ValueSpec[]) => specs.forEach(([name], i) => branch.output(branch.op('Identity', [name]), final[i][1] as never, final[i][2]));
  const loops = g.subgraph('loops');
  if (opts.imageHead ?? true) {
    const imageOut = emitGenerationLoop(g, g, w, 'image', { declareInputs: false, symbolicWidths: true, steps: stepsIf(isLoopImage), rename: (n) => g.fresh(n) });
    const full = loops.subgraph('full');
    const image = loops.subgraph('image');
    pick(full, fullOut);
    pick(image, imageOut);
    const picked = loops.node('If', [isLoopFull], { then_branch: { graph: full }, else_branch: { graph: image } }, { outputs: fullOut.length });
    picked.forEach((name, i) => loops.output(name, final[i][1] as never, final[i][2]));
  } else {
    pick(loops, fullOut);
  }

  // the prefill branch, with the loop's output layout
  const prefill = g.subgraph('prefill');
  const L = w.config.numHiddenLayers;
  const forward = emitDecoderForward(prefill, w, {
    inputIds,
    attentionMask: I.attentionMask,
    positionIds: I.positionIds,
    pastKeys: Array.from({ length: L }, (_, i) => cacheNames(i).pastKey),
    pastValues: Array.from({ length: L }, (_, i) => cacheNames(i).pastValue),
  });
  const last = prefill.op('Slice', [forward.hidden, prefill.int64s([-1]), prefill.int64s([2 ** 53]), prefill.int64s([1])]); // [B, 1, C]
  const echo = (name: string) => prefill.op('Identity', [name]);
  const prefillOut = [
    last,
    echo(I.attentionMask),
    echo(I.positionIds),
    ...forward.presentKeys.flatMap((k, i) => [k, forward.presentValues[i]]),
    echo(I.imageCount),
    echo(I.done),
    echo(I.remaining),
    echo(I.seen),
    echo(I.counts),
    prefill.op('Identity', [g.constant('no_tokens', DataType.INT64, [0, 1], [])]),
  ];
  prefillOut.forEach((name, i) => prefill.output(name, final[i][1] as never, final[i][2]));

  g.node('If', [isPrefill], { then_branch: { graph: prefill }, else_branch: { graph: loops } }, { outputs: final.map(([name]) => name) });
  for (const [name, type, dims] of final) g.output(name, type as never, dims);
  return g.build();
}

/** A branch-local output name (`…/name_<n>`) back to the graph output it stands for. */
function finalName(branchName: string): string {
  return branchName.slice(branchName.lastIndexOf('/') + 1).replace(/_\d+$/, '');
}
