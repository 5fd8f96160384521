import { DataType, GraphBuilder, type BuiltModel, type DataTypeId } from '../onnx/graph-builder.ts';
import type { DecoderWeights } from './decoder.ts';
import { TOKEN_CHOICE_INPUTS as I, logitWidth, settingInputs, type HeadKind } from './head-inputs.ts';
import { emitTokenChoice } from './token-choice.ts';

/**
 * Engine v2's head (docs/engine-v2.md): the rows' last hidden states in, one token per group out,
 * and the token each row feeds to the decoder's next step (`row_ids`, bound straight to the step
 * graph's input_ids). The lm-head, guidance mix, mode mask, penalty, bias and sampling are
 * token-choice.ts's. `head: 'image'` reads only the image-token rows of lm_head,
 * for steps in which every group is drawing an image.
 */
export const HEAD_INPUTS = {
  hidden: I.hidden, // [R, 1, C] activation type
  imageCount: I.imageCount, // [G] int64
  done: I.done, // [G] bool
  remaining: I.remaining, // [G] int64
  seen: I.seen, // [G, V] bool
  counts: I.counts, // [G, V] float32
  uniform: 'uniform', // [G] float32
} as const;

export const HEAD_OUTPUTS = {
  token: 'token', // [G] int64
  rowIds: 'row_ids', // [R, 1] int64
  nextSeen: 'next.seen', // [G, V] bool: seen with the token marked (bound to the other of two buffers)
  nextCounts: 'next.counts', // [G, V] float32: counts with the token counted (likewise)
} as const;

export function buildHeadGraph(w: DecoderWeights, head: HeadKind, opts: { floatType?: DataTypeId } = {}): BuiltModel {
  const c = w.config;
  const V = c.vocabSize;
  const g = new GraphBuilder(`anole_head_${head}`);
  g.floatType = opts.floatType ?? DataType.FLOAT;
  const x = {
    hidden: g.input(HEAD_INPUTS.hidden, g.floatType, ['rows', 1, c.hiddenSize]),
    imageCount: g.input(HEAD_INPUTS.imageCount, DataType.INT64, ['groups']),
    done: g.input(HEAD_INPUTS.done, DataType.BOOL, ['groups']),
    remaining: g.input(HEAD_INPUTS.remaining, DataType.INT64, ['groups']),
    seen: g.input(HEAD_INPUTS.seen, DataType.BOOL, ['groups', V]),
    counts: g.input(HEAD_INPUTS.counts, DataType.FLOAT, ['groups', V]),
    uniform: g.input(HEAD_INPUTS.uniform, DataType.FLOAT, ['groups']),
  };
  const width = logitWidth(c, head);
  for (const [name, type, dims] of settingInputs(V, head, width)) g.input(name, type as never, dims);

  const { token, nextSeen, nextCounts } = emitTokenChoice(g, w, head, x);
  g.op('Identity', [token], {}, { output: HEAD_OUTPUTS.token });
  g.op('Identity', [nextSeen], {}, { output: HEAD_OUTPUTS.nextSeen });
  g.op('Identity', [nextCounts], {}, { output: HEAD_OUTPUTS.nextCounts });
  g.op('Unsqueeze', [g.op('Gather', [token, I.rowGroup], { axis: 0 }), g.int64s([1])], {}, { output: HEAD_OUTPUTS.rowIds });
  g.output(HEAD_OUTPUTS.token, DataType.INT64, ['groups']);
  g.output(HEAD_OUTPUTS.rowIds, DataType.INT64, ['rows', 1]);
  g.output(HEAD_OUTPUTS.nextSeen, DataType.BOOL, ['groups', V]);
  g.output(HEAD_OUTPUTS.nextCounts, DataType.FLOAT, ['groups', V]);
  return g.build();
}
