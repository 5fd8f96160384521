import type { PredictionEvent } from '../../contract/prediction.ts';
import type { PredictionStore } from '../../contract/prediction-store.ts';
import type { BlobStore } from '../../contract/blob-store.ts';

/**
 * Appends a running prediction's events in the background, in order, so generation never waits
 * on S3. While a write is in flight, text deltas of one sequence merge and image-row progress
 * keeps only its latest state: a slow store means fewer, larger events, not a growing backlog.
 * The first failed write stops it; flush() then throws that error (the run is not complete).
 */
export class EventWriter {
  private queue: { event: PredictionEvent; blob?: { key: string; body: Uint8Array; contentType: string } }[] = [];
  private pumping: Promise<void> | undefined;
  private error: unknown;

  constructor(
    private readonly predictions: PredictionStore,
    private readonly blobs: BlobStore,
    readonly predictionId: string,
    private readonly onError: (e: unknown) => void = () => {},
  ) {}

  /** Queues an event; `blob` (a preview PNG) is stored before the event that names it. */
  push(event: PredictionEvent, blob?: { key: string; body: Uint8Array; contentType: string }): void {
    if (this.error !== undefined) return;
    const last = this.queue[this.queue.length - 1];
    if (last && event.type === 'text' && last.event.type === 'text' && last.event.sequence === event.sequence) {
      last.event = { ...last.event, delta: last.event.delta + event.delta };
    } else if (last && !blob && !last.blob && event.type === 'image_rows' && last.event.type === 'image_rows' && last.event.sequence === event.sequence && last.event.image === event.image) {
      last.event = event;
    } else {
      this.queue.push({ event, blob });
    }
    this.pumping ??= this.pump();
  }

  /** Resolves when every queued event is stored; throws the write error if one failed. */
  async flush(): Promise<void> {
    while (this.pumping) await this.pumping;
    if (this.error !== undefined) throw this.error;
  }

  get failed(): boolean {
    return this.error !== undefined;
  }

  private async pump(): Promise<void> {
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) {
        if (item.blob) await this.blobs.put(item.blob.key, item.blob.body, item.blob.contentType);
        await this.predictions.appendEvent(this.predictionId, item.event);
      }
    } catch (e) {
      this.error = e;
      this.queue = [];
      this.onError(e);
    } finally {
      this.pumping = undefined;
    }
  }
}
