import type { JobUpdate } from '../sidecar/worker/run-jobs.ts';

/** What the progress bar of `generate` shows: a stage, and how far it is in that stage's own unit. */
export interface ProgressView {
  stage: string;
  value: number;
  total: number;
}

/**
 * Follows a job's events for the progress bar. An image advances row by row of its token grid (all
 * n sequences of a batch together: in image mode each makes one from the start, in interleaved mode
 * a sequence joins at its image's first row), and once its last row is in, the VQ decode shows as
 * its own stage until the PNG is there; text counts the pieces that arrived, against the token budget.
 */
export class GenerationProgress {
  private readonly rows = new Map<number, number>(); // sequence → rows done of the image it is making
  private gridRows = 1; // rows of an image's token grid (known from the first image_rows)
  private decoded = 0; // images of the current batch already decoded
  private textPieces = 0;
  private view: ProgressView;

  constructor(
    private readonly n: number,
    private readonly maxNewTokens: number,
    mode: 'text' | 'image' | 'interleaved' = 'text',
  ) {
    if (mode === 'image') for (let k = 0; k < n; k++) this.rows.set(k, 0);
    this.view = mode === 'image' ? this.rowsView(0) : this.textView();
  }

  update(update: JobUpdate): ProgressView {
    if (update.type === 'done') return this.view;
    const event = update.event;
    switch (event.type) {
      case 'text':
        this.textPieces++;
        if (this.rows.size === 0) this.view = this.textView();
        break;
      case 'image_rows':
        this.rows.set(event.sequence, event.rows);
        this.gridRows = event.total_rows;
        this.view = [...this.rows.values()].every((r) => r >= this.gridRows)
          ? { stage: `decoding image ${event.image + 1} (VQ)`, value: this.decoded, total: this.rows.size + this.decoded }
          : this.rowsView(event.image);
        break;
      case 'image':
        this.rows.delete(event.sequence);
        this.decoded++;
        if (this.rows.size > 0) {
          this.view = { ...this.view, value: this.decoded };
        } else {
          this.decoded = 0;
          this.view = this.textView();
        }
        break;
    }
    return this.view;
  }

  private textView(): ProgressView {
    return { stage: 'generating', value: this.textPieces, total: this.n * this.maxNewTokens };
  }

  private rowsView(image: number): ProgressView {
    const done = [...this.rows.values()].reduce((a, b) => a + b, 0);
    return { stage: `image ${image + 1}: rows`, value: done, total: this.rows.size * this.gridRows };
  }
}
