import type { StreamEvent } from './event-stream.ts';

/**
 * One run's output as it arrives: per sequence, its parts in order. Text deltas append to the
 * sequence's current paragraph; an image appears at its first row event as an empty square and
 * grows: each preview (the rows finished so far, decoded) replaces the last, then the final PNG
 * replaces the preview once it has loaded. Each figure's data-state says what it shows
 * (`rows 2/4`, `preview 2/4`, `final`) and data-received the last event that reached it
 * (`rows 2/4`, `preview 2/4`, `image`), for people and for tests alike.
 */
export class OutputView {
  private readonly sequences = new Map<number, HTMLElement>();
  private readonly figures = new Map<string, ImageSlot>();

  constructor(private readonly root: HTMLElement) {
    root.replaceChildren();
  }

  apply(e: StreamEvent): void {
    if (e.type === 'text') this.appendText(e.sequence, e.delta);
    else if (e.type === 'image_rows') this.slot(e.sequence, e.image).rows(e.rows, e.total_rows, e.preview_url);
    else if (e.type === 'image') this.slot(e.sequence, e.image).final(e.url, e.width, e.height);
  }

  /** Frees the previews' object URLs. */
  release(): void {
    for (const f of this.figures.values()) f.release();
  }

  private sequence(k: number): HTMLElement {
    let el = this.sequences.get(k);
    if (!el) {
      el = document.createElement('article');
      el.className = 'sequence';
      el.dataset.sequence = String(k);
      if (k > 0 || this.sequences.size > 0) el.setAttribute('aria-label', `Sequence ${k + 1}`);
      // sequences in order, whichever speaks first
      const next = [...this.sequences.entries()].filter(([j]) => j > k).sort(([a], [b]) => a - b)[0];
      this.root.insertBefore(el, next ? next[1] : null);
      this.sequences.set(k, el);
    }
    return el;
  }

  private appendText(k: number, delta: string): void {
    const seq = this.sequence(k);
    let p = seq.lastElementChild;
    if (!(p instanceof HTMLParagraphElement)) {
      p = document.createElement('p');
      p.className = 'text';
      seq.append(p);
    }
    p.append(delta); // a text node per delta: nothing is re-rendered, and selection survives
  }

  private slot(k: number, i: number): ImageSlot {
    const key = `${k}:${i}`;
    let f = this.figures.get(key);
    if (!f) {
      f = new ImageSlot(k, i);
      this.sequence(k).append(f.el);
      this.figures.set(key, f);
    }
    return f;
  }
}

class ImageSlot {
  readonly el = document.createElement('figure');
  private readonly frame = document.createElement('div');
  private readonly img = document.createElement('img');
  private readonly caption = document.createElement('figcaption');
  private shownRows = 0;
  /** The final PNG is on screen: nothing replaces it. Previews may still show while it loads. */
  private finalShown = false;
  private blobUrl: string | undefined;

  constructor(sequence: number, image: number) {
    this.el.className = 'image';
    this.frame.className = 'frame';
    this.img.alt = `Image ${image + 1}${sequence > 0 ? ` of sequence ${sequence + 1}` : ''}, being generated`;
    this.img.hidden = true;
    this.frame.append(this.img);
    this.el.append(this.frame, this.caption);
    this.el.dataset.state = 'waiting';
  }

  rows(rows: number, total: number, previewUrl: string | undefined): void {
    this.el.dataset.received = `${previewUrl ? 'preview' : 'rows'} ${rows}/${total}`;
    if (this.finalShown) return;
    this.frame.style.setProperty('--progress', String(rows / total));
    if (!previewUrl) {
      if (this.shownRows === 0) this.el.dataset.state = `rows ${rows}/${total}`;
      this.caption.textContent = `Row ${rows} of ${total}`;
      return;
    }
    // a preview is the finished rows, cropped: its height says how many it shows. Previews share
    // one key (a later one may already be there), so each is fetched fresh and the most rows win.
    void fetch(previewUrl, { cache: 'no-store' })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
      .then(async (blob) => {
        const url = URL.createObjectURL(blob);
        const probe = new Image();
        probe.src = url;
        await probe.decode();
        const shows = Math.round((probe.naturalHeight * total) / probe.naturalWidth);
        if (this.finalShown || shows <= this.shownRows) return URL.revokeObjectURL(url);
        this.shownRows = shows;
        this.img.src = url;
        this.img.hidden = false;
        if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
        this.blobUrl = url;
        this.el.dataset.state = `preview ${shows}/${total}`;
        this.caption.textContent = `Preview: ${shows} of ${total} rows`;
      })
      .catch(() => {
        if (!this.finalShown) this.caption.textContent = `Row ${rows} of ${total} (the preview could not be loaded)`;
      });
  }

  final(url: string, width: number, height: number): void {
    this.el.dataset.received = 'image';
    const done = new Image(width, height);
    done.onload = () => {
      this.finalShown = true;
      this.img.src = url;
      this.img.width = width;
      this.img.height = height;
      this.img.alt = `Generated image, ${width}×${height}`;
      this.img.hidden = false;
      this.frame.style.setProperty('--progress', '1');
      this.el.dataset.state = 'final';
      const link = document.createElement('a');
      link.href = url;
      link.download = '';
      link.textContent = 'Download PNG';
      this.caption.replaceChildren(`${width}×${height} · `, link);
      this.release();
    };
    done.onerror = () => {
      this.el.dataset.state = 'error';
      this.caption.textContent = 'The finished image could not be loaded.';
    };
    done.src = url;
  }

  release(): void {
    if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
    this.blobUrl = undefined;
  }
}
