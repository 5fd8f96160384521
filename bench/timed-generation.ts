import type { SequenceRequest } from '../contract/generation-request.ts';
import type { GenerationEngine } from '../sidecar/engine/generation-engine.ts';

/** What the bench times: an engine's event stream. */
export type TimedEngine = Pick<GenerationEngine, 'generate'>;

/**
 * Times spans of one generation's event stream. Leaving the `for await` early calls the async
 * generator's return(), which ends it at its current yield: no further session.run happens, so a
 * stopped run costs only the tokens it was asked for (the same effect as aborting the request).
 */
export interface Span {
  tokens: number;
  ms: number;
}

/** chunkSize undefined = the engine's default (events every image row); 1 = events every step. */
export type ChunkSize = number | undefined;

/**
 * Image tokens over time inside an image: from image_start (the prompt and guidance rows are
 * prefilled by then) to the event that completes `tokens` codes. Image rows are reported when
 * complete, so `tokens` should be a multiple of the grid width.
 */
export async function timeImageTokens(generator: TimedEngine, request: SequenceRequest, tokens: number, chunkSize: ChunkSize): Promise<Span> {
  let start: number | undefined;
  for await (const e of generator.generate([request], { chunkSize })) {
    if (e.type === 'image_start') start = performance.now();
    if (e.type === 'image_rows' && e.codes.length >= tokens) {
      if (start === undefined) throw new Error('image_rows before image_start');
      return { tokens: e.codes.length, ms: performance.now() - start };
    }
  }
  throw new Error(`the image ended before ${tokens} image tokens`);
}

/**
 * Text tokens over time after the first text event: leaves out the prefill and the first chunk's
 * wait (time to first token reports those). `generated` counts every text token of the run.
 */
export async function timeTextTokens(generator: TimedEngine, request: SequenceRequest, chunkSize: ChunkSize): Promise<Span & { generated: number }> {
  let first: number | undefined;
  let last = 0;
  let after = 0;
  let generated = 0;
  for await (const e of generator.generate([request], { chunkSize })) {
    if (e.type !== 'text') continue;
    const now = performance.now();
    generated += e.tokens.length;
    if (first === undefined) first = now;
    else {
      after += e.tokens.length;
      last = now;
    }
  }
  if (first === undefined || after === 0) throw new Error(`too few text events to time (${generated} tokens): raise max_new_tokens above one chunk`);
  return { tokens: after, ms: last - first, generated };
}

/** A whole image, prefill included: its codes and the milliseconds to image_done. */
export async function timeWholeImage(generator: TimedEngine, request: SequenceRequest, chunkSize: ChunkSize): Promise<{ ms: number; codes: number[] }> {
  const start = performance.now();
  for await (const e of generator.generate([request], { chunkSize })) {
    if (e.type === 'image_done') return { ms: performance.now() - start, codes: e.codes };
  }
  throw new Error('the run ended without a complete image');
}
