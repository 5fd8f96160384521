import { maskOf } from '../../model/constraints.ts';
import type { AnoleConfig } from '../../model/config.ts';
import { cacheRowsPerSequence, type SequenceRequest } from '../../contract/generation-request.ts';
import { UniformStream } from './uniform-stream.ts';

/**
 * A generation request's life as both engines see it: started from its request, fed one token at
 * a time (acceptToken), reporting events; the engines differ only in how they compute the tokens.
 */

/** What a running generation reports, in order, per sequence (the index into the requests). */
export type GenerationEvent =
  | { type: 'text'; sequence: number; tokens: number[] }
  | { type: 'image_start'; sequence: number }
  /** `rows` complete rows of the token grid; `codes` are the VQ codes so far (row-major). */
  | { type: 'image_rows'; sequence: number; rows: number; codes: number[] }
  | { type: 'image_done'; sequence: number; codes: number[] }
  | { type: 'done'; sequence: number; tokens: number[]; reason: FinishReason };

export type FinishReason = 'eos' | 'length' | 'image' | 'canceled';

/** One request's state while it generates: its tokens, where its state machine stands, its guidance rows. */
export interface Sequence {
  index: number;
  request: SequenceRequest;
  textAllowed: Uint8Array;
  bias: Float32Array;
  uniforms: UniformStream;
  tokens: number[];
  imageCount: number; // -1 in text, else image tokens so far
  done: boolean;
  remaining: number;
  seen: Uint8Array;
  /** How often each token was generated (presence / frequency penalties). */
  counts: Float32Array;
  guided: boolean;
  /** True while this sequence has its two guidance rows in the batch. */
  hasGuidanceRows: boolean;
  imageCodes: number[];
  rowsReported: number;
}

/** full: the whole sequence; image: its image-only filter; uncond: [BOS, BOI] (guidance rows). */
export type RowRole = 'full' | 'image' | 'uncond';

export function startSequence(c: AnoleConfig, request: SequenceRequest, index: number): Sequence {
  const k = request.constraints;
  if (!(Number.isInteger(request.maxNewTokens) && request.maxNewTokens >= 1)) {
    throw new Error(`max_new_tokens must be a positive integer, got ${request.maxNewTokens}`);
  }
  if (k.startInImage && request.maxNewTokens < c.imageSeqLength + 2) {
    throw new Error(`max_new_tokens ${request.maxNewTokens} cannot hold an image: it needs ${c.imageSeqLength + 2} (boi, ${c.imageSeqLength} image tokens, eoi)`);
  }
  if (request.promptIds.length === 0) throw new Error('the prompt has no tokens');
  if (request.promptIds.length + request.maxNewTokens > c.maxPositionEmbeddings) {
    throw new Error(`prompt (${request.promptIds.length} tokens) + max_new_tokens (${request.maxNewTokens}) exceeds the context length ${c.maxPositionEmbeddings}`);
  }
  const bias = new Float32Array(c.vocabSize);
  for (const [id, value] of Object.entries(request.logitBias ?? {})) bias[Number(id)] = value;
  const seen = new Uint8Array(c.vocabSize);
  for (const id of request.promptIds) seen[id] = 1;
  const seq: Sequence = {
    index,
    request,
    textAllowed: maskOf(k.text, c.vocabSize),
    bias,
    uniforms: new UniformStream(request.seed),
    tokens: [],
    imageCount: -1,
    done: false,
    remaining: request.maxNewTokens,
    seen,
    counts: new Float32Array(c.vocabSize),
    // guidance rows serve images only: a sequence that can draw none holds one slot, not three
    guided: cacheRowsPerSequence(request) === 3,
    hasGuidanceRows: false,
    imageCodes: [],
    rowsReported: 0,
  };
  if (k.startInImage) {
    // image mode: boi is forced, so it joins the prompt instead of costing a step of its own
    // (unless the prompt already ends with it, as Meta's ImageDecoder checks)
    if (request.promptIds[request.promptIds.length - 1] !== c.boiTokenId) {
      seq.tokens.push(c.boiTokenId);
      seq.seen[c.boiTokenId] = 1;
      seq.remaining--;
    }
    seq.imageCount = 0;
    seq.hasGuidanceRows = seq.guided;
  }
  return seq;
}

/** The prompt of each requested row: the whole sequence, its image-only filter, or [BOS, BOI]. */
export function rowPrompts(c: AnoleConfig, imageIds: Set<number>, s: Sequence, roles: RowRole[]): { seq: Sequence; role: RowRole; prompt: number[] }[] {
  const full = [...s.request.promptIds, ...s.tokens];
  const keep = (id: number) => imageIds.has(id) || id === c.bosTokenId || id === c.boiTokenId || id === c.eoiTokenId;
  const prompts: Record<RowRole, number[]> = {
    full,
    image: full.filter(keep),
    uncond: [c.bosTokenId, c.boiTokenId],
  };
  return roles.map((role) => ({ seq: s, role, prompt: prompts[role] }));
}

/** Applies one generated token to a sequence's state and reports what it means. */
export function acceptToken(c: AnoleConfig, codeOf: Int32Array, s: Sequence, token: number, events: GenerationEvent[]): void {
  const N = c.imageSeqLength;
  const width = c.vq.quantStateDims[1];
  s.tokens.push(token);
  s.remaining--;
  if (s.imageCount < 0) {
    if (token === c.boiTokenId) {
      s.imageCount = 0;
      s.imageCodes = [];
      s.rowsReported = 0;
      events.push({ type: 'image_start', sequence: s.index });
    } else if (token !== c.eosTokenId) {
      const last = events[events.length - 1];
      if (last?.type === 'text' && last.sequence === s.index) last.tokens.push(token);
      else events.push({ type: 'text', sequence: s.index, tokens: [token] });
    }
  } else if (s.imageCount < N) {
    s.imageCount++;
    s.imageCodes.push(codeOf[token]);
    const rows = Math.floor(s.imageCodes.length / width);
    if (rows > s.rowsReported) {
      s.rowsReported = rows;
      events.push({ type: 'image_rows', sequence: s.index, rows, codes: s.imageCodes.slice() });
    }
  } else {
    // the eoi that closes a complete image
    s.imageCount = -1;
    events.push({ type: 'image_done', sequence: s.index, codes: s.imageCodes.slice() });
    if (s.request.constraints.stopAfterImage) return finishSequence(s, 'image', events);
  }
  if (token === c.eosTokenId) return finishSequence(s, 'eos', events);
  if (s.remaining <= 0) return finishSequence(s, 'length', events);
}

export function finishSequence(s: Sequence, reason: FinishReason, events: GenerationEvent[]): void {
  s.done = true;
  events.push({ type: 'done', sequence: s.index, tokens: s.tokens.slice(), reason });
}
