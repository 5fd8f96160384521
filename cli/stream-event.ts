import type { PredictionEvent } from '../contract/prediction.ts';
import type { JobEvent } from '../sidecar/worker/run-jobs.ts';

/**
 * `generate --stream`'s JSON lines carry the API's stream events (GET …/stream), field for field,
 * so one parser reads both; `image_start` has no API event and is not printed. An image's `key` is
 * its file's name under --out.
 */
export function streamEvent(event: JobEvent): PredictionEvent | undefined {
  switch (event.type) {
    case 'text':
      return { type: 'text', sequence: event.sequence, delta: event.delta };
    case 'image_rows':
      return { type: 'image_rows', sequence: event.sequence, image: event.image, rows: event.rows, total_rows: event.totalRows };
    case 'image':
      return { type: 'image', sequence: event.sequence, image: event.image, key: event.key, width: event.width, height: event.height };
    case 'done':
      return { type: 'done', status: 'succeeded' };
    case 'image_start':
      return undefined;
  }
}
