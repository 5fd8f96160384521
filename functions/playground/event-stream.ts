import { createParser } from 'eventsource-parser';
import { failureOf, ApiFailure } from './api-client.ts';
import type { StreamedEvent } from '../../contract/prediction.ts';

/** The stream endpoint's events, image keys already presigned (one definition, in contract/prediction.ts). */
export type StreamEvent = StreamedEvent;

const RETRIES = 3;

/**
 * GET /v1/predictions/{id}/stream read with fetch (EventSource cannot send an Authorization
 * header), parsed by eventsource-parser. A stream that ends before `done` (the server ends long
 * ones on purpose, or the connection dropped) is resumed with Last-Event-ID, so no event is seen
 * twice; only RETRIES ends in a row with nothing new count as a failure. It ends at `done` or
 * when `signal` aborts.
 */
export async function followStream(
  id: string,
  headers: Record<string, string>,
  onEvent: (e: StreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  let lastId: string | undefined;
  let done = false;
  let fruitless = 0; // connections in a row that brought no new event
  while (!done && !signal.aborted) {
    let res: Response;
    try {
      res = await fetch(`/v1/predictions/${encodeURIComponent(id)}/stream`, {
        headers: { ...headers, accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
        signal,
        cache: 'no-store',
      });
    } catch {
      if (signal.aborted) return;
      if (++fruitless > RETRIES) throw new ApiFailure('Following the prediction failed: the server could not be reached.', null, null);
      await pause(500 * fruitless);
      continue;
    }
    if (!res.ok || !res.body) throw await failureOf(res, 'Following the prediction');
    const seenBefore = lastId;
    const parser = createParser({
      onEvent(message) {
        if (message.id) lastId = message.id;
        const event = { type: message.event ?? 'message', ...JSON.parse(message.data) } as StreamEvent;
        if (event.type === 'done') done = true;
        onEvent(event);
      },
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        parser.feed(value);
      }
    } catch {
      if (signal.aborted) return;
      // dropped mid-stream: resume after the last event seen
    }
    if (done) break;
    fruitless = lastId !== seenBefore ? 0 : fruitless + 1;
    if (fruitless > RETRIES) throw new ApiFailure('The connection to the server kept dropping before the prediction finished.', null, null);
    if (fruitless > 0) await pause(500 * fruitless);
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
