import { imageVocabulary } from '../../model/vocabulary.ts';
import { DataType, type GraphBuilder } from '../onnx/graph-builder.ts';
import { emitLmHead, type DecoderWeights } from './decoder.ts';
import { imageTokenRange, TOKEN_CHOICE_INPUTS as I, logitWidth, type HeadKind } from './head-inputs.ts';
import { mixGuidance, sampleTokens } from './sampler.ts';

/**
 * How one token per group is chosen from the rows' last hidden states, under each group's state
 * (model/constraints.ts; the state machine itself moves on in JavaScript, sequence.ts): the whole of
 * engine v2's head graph (head-graph.ts). The per-group settings are read by their
 * TOKEN_CHOICE_INPUTS names (graph inputs).
 *
 *   image_count = -1     text: `text_allowed`, plus boi when allowed and an image still fits
 *   0 ≤ image_count < N  inside an image: image tokens only
 *   image_count = N      the image is complete: eoi only
 *   done                 pad (the row idles)
 */
export interface TokenChoiceState {
  hidden: string; // [R, 1, C] each row's last hidden state (after the final norm)
  imageCount: string; // [G] int64
  done: string; // [G] bool
  remaining: string; // [G] int64
  seen: string; // [G, V] bool
  counts: string; // [G, V] float32
  uniform: string; // [G] float32 in [0, 1)
}

export interface TokenChoice {
  token: string; // [G] int64, pad for done groups
  nextSeen: string; // seen with the token marked
  nextCounts: string; // counts with the token counted
}

export function emitTokenChoice(b: GraphBuilder, w: DecoderWeights, head: HeadKind, x: TokenChoiceState): TokenChoice {
  const c = w.config;
  const V = c.vocabSize;
  const codeToToken = imageVocabulary(c).codeToToken;
  const W = logitWidth(c, head); // logits per row (throws when the image tokens are not one range)
  const imageRows = imageTokenRange(codeToToken);
  const N = c.imageSeqLength;
  const col = (x: string) => b.op('Unsqueeze', [x, b.int64s([1])]); // [G] → [G, 1]
  const not = (x: string) => b.op('Not', [x]);
  const and = (x: string, y: string) => b.op('And', [x, y]);
  const or = (x: string, y: string) => b.op('Or', [x, y]);
  const eq = (x: string, id: number) => b.op('Equal', [x, b.int64(id)]);

  // where each group stands
  const { imageCount, done, remaining } = x;
  const inImage = b.op('GreaterOrEqual', [imageCount, b.int64(0)]); // [G]
  const imageComplete = eq(imageCount, N);
  const drawingImage = and(inImage, not(imageComplete));

  // the lm-head on the last forward's hidden states: [R, 1, C] → [R, W]
  const rows = head === 'image' ? { rows: imageRows } : {};
  const rowLogits = b.op('Squeeze', [emitLmHead(b, w, x.hidden, rows), b.int64s([1])]);

  // guidance rows apply only inside an image
  const guidedNow = and(I.guided, inImage);
  const logits = mixGuidance(
    b,
    rowLogits,
    { full: I.rowFull, imageCond: b.op('Where', [guidedNow, I.rowImage, I.rowFull]), uncond: b.op('Where', [guidedNow, I.rowUncond, I.rowFull]) },
    { image: I.scaleImage, text: I.scaleText },
  ); // [G, V]

  // the mode's mask: boi only while boi + N image tokens + eoi still fit in the budget
  // (ONNX Runtime's CPU Where has no bool kernel, so the choice is spelt with And / Or)
  let allowed: string; // [G, W]
  if (head === 'image') {
    allowed = b.op('Expand', [b.constant('all_images', DataType.BOOL, [1, W], new Array(W).fill(1)), b.op('Shape', [logits])]);
  } else {
    // token sets that never change: image tokens, and one-hot rows for boi / eoi / pad
    const imageIds = new Uint8Array(V);
    for (const id of codeToToken) imageIds[id] = 1;
    const oneHot = (id: number) => Array.from({ length: V }, (_, j) => Number(j === id));
    const imageAllowed = b.root().constant('image_allowed', DataType.BOOL, [V], imageIds);
    const eoiOnly = b.root().constant('eoi_only', DataType.BOOL, [V], oneHot(c.eoiTokenId));
    const padOnly = b.root().constant('pad_only', DataType.BOOL, [V], oneHot(c.padTokenId));
    const isBoiColumn = b.root().constant('boi_column', DataType.BOOL, [V], oneHot(c.boiTokenId));
    const imageFits = and(I.allowBoi, b.op('GreaterOrEqual', [remaining, b.int64(N + 2)]));
    const textAllowed = or(I.textAllowed, and(b.op('Unsqueeze', [isBoiColumn, b.int64s([0])]), col(imageFits)));
    const active = not(done);
    allowed = or(
      or(and(col(done), padOnly), and(col(and(active, imageComplete)), eoiOnly)),
      or(and(col(and(active, drawingImage)), imageAllowed), and(col(and(active, not(inImage))), textAllowed)),
    );
  }

  // text or image sampling settings, per group
  const stateColumn = col(b.op('Cast', [inImage], { to: DataType.INT64 })); // [G, 1]: 0 text, 1 image
  const pickSetting = (x: string) => b.op('Squeeze', [b.op('GatherElements', [x, stateColumn], { axis: 1 }), b.int64s([1])]);
  const picked = sampleTokens(b, {
    logits,
    allowed,
    temperature: pickSetting(I.temperature),
    topP: pickSetting(I.topP),
    topK: pickSetting(I.topK),
    greedy: pickSetting(I.greedy),
    uniform: x.uniform,
    // the penalty is for text tokens, which the image head never draws
    repetition: head === 'full' ? { penalty: b.op('Where', [inImage, b.float(1), I.penalty]), seen: x.seen } : undefined,
    occurrence:
      head === 'full' ? { presence: b.op('Where', [inImage, b.float(0), I.presence]), frequency: b.op('Where', [inImage, b.float(0), I.frequency]), counts: x.counts } : undefined,
    bias: I.bias,
  });
  const chosen = head === 'image' ? b.op('Gather', [b.constant('code_to_token', DataType.INT64, [W], Array.from(codeToToken)), picked], { axis: 0 }) : picked;
  const token = b.op('Where', [done, b.int64(c.padTokenId), chosen]); // [G]

  // the penalties' state (the rest of the state machine moves on in JavaScript)
  const nextSeen = b.op('ScatterElements', [x.seen, col(token), b.op('Expand', [b.constant('true', DataType.BOOL, [1, 1], [1]), b.op('Shape', [col(token)])])], { axis: 1 });
  // every token counts (a done group's pad too: pad is never a text token, so it is never penalised)
  const nextCounts = b.op('ScatterElements', [x.counts, col(token), b.op('Expand', [b.constant('one', DataType.FLOAT, [1, 1], [1]), b.op('Shape', [col(token)])])], { axis: 1, reduction: 'add' });

  return { token, nextSeen, nextCounts };
}
