import type { PredictionView } from '../api/schemas.ts';

/**
 * This browser's past predictions, newest first, kept in localStorage (ids, prompts, text and
 * image links; no image bytes). Image links are presigned and expire: an expired one is renewed
 * by reading the prediction again (GET gives fresh URLs) when the gallery is shown.
 */
export interface GalleryEntry {
  id: string;
  created: string;
  prompt: string;
  mode: string;
  status: string;
  text: string;
  images: { url: string; width: number; height: number; expires_at: string }[];
  error: string | null;
}

const KEY = 'anole.playground.gallery';
const MAX_ENTRIES = 40;
const MAX_TEXT = 600;

export function entryOf(p: PredictionView, prompt: string, mode: string): GalleryEntry {
  const output = p.output ?? [];
  return {
    id: p.id,
    created: p.created_at,
    prompt,
    mode,
    status: p.status,
    // each sequence's text, a blank line between sequences
    text: output.reduce((text, part, k) => (part.type !== 'text' ? text : text + (k > 0 && output[k - 1].sequence !== part.sequence && text ? '\n\n' : '') + part.text), '').slice(0, MAX_TEXT),
    images: output.flatMap((part) => (part.type === 'image' ? [{ url: part.url, width: part.width, height: part.height, expires_at: part.expires_at }] : [])),
    error: p.error,
  };
}

export class Gallery {
  private entries: GalleryEntry[];

  constructor(
    private readonly list: HTMLOListElement,
    private readonly actions: {
      /** Fresh URLs for an entry whose links expired; null when the server no longer has it. */
      refresh: (id: string) => Promise<PredictionView | null>;
      reuse: (entry: GalleryEntry) => void;
    },
  ) {
    this.entries = load();
    this.render();
  }

  add(entry: GalleryEntry): void {
    this.entries = [entry, ...this.entries.filter((e) => e.id !== entry.id)].slice(0, MAX_ENTRIES);
    this.save();
    this.render();
  }

  clear(): void {
    this.entries = [];
    this.save();
    this.render();
  }

  private remove(id: string): void {
    this.entries = this.entries.filter((e) => e.id !== id);
    this.save();
    this.render();
  }

  private save(): void {
    try {
      localStorage.setItem(KEY, JSON.stringify(this.entries));
    } catch {
      // full or disabled storage: the gallery lives for this page only
    }
  }

  private render(): void {
    this.list.replaceChildren(...this.entries.map((e) => this.card(e)));
    if (this.entries.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'empty';
      empty.textContent = 'Your predictions will be listed here (kept in this browser only).';
      this.list.append(empty);
    }
    const now = Date.now();
    for (const e of this.entries) if (e.images.some((img) => Date.parse(img.expires_at) <= now)) void this.renew(e);
  }

  private async renew(e: GalleryEntry): Promise<void> {
    const fresh = await this.actions.refresh(e.id).catch(() => undefined);
    if (fresh === undefined) return; // unreachable now; try again next time
    const index = this.entries.findIndex((x) => x.id === e.id);
    if (index < 0) return;
    this.entries[index] = fresh ? { ...entryOf(fresh, e.prompt, e.mode) } : { ...e, images: [], error: e.error ?? 'The server no longer has this prediction.' };
    this.save();
    this.list.children[index]?.replaceWith(this.card(this.entries[index]));
  }

  private card(e: GalleryEntry): HTMLLIElement {
    const li = document.createElement('li');
    li.className = 'card';
    const head = document.createElement('p');
    head.className = 'meta';
    head.textContent = `${new Date(e.created).toLocaleString()} · ${e.mode} · ${e.status}`;
    const prompt = document.createElement('p');
    prompt.className = 'prompt';
    prompt.textContent = e.prompt;
    li.append(head, prompt);
    if (e.text) {
      const text = document.createElement('p');
      text.className = 'text';
      text.textContent = e.text;
      li.append(text);
    }
    if (e.error) {
      const err = document.createElement('p');
      err.className = 'error-text';
      err.textContent = e.error;
      li.append(err);
    }
    if (e.images.length > 0) {
      const row = document.createElement('div');
      row.className = 'thumbs';
      e.images.forEach((img, k) => {
        const a = document.createElement('a');
        a.href = img.url;
        a.download = `anole-${e.id}-${k}.png`;
        a.title = 'Download PNG';
        const thumb = document.createElement('img');
        thumb.src = img.url;
        thumb.alt = `Image ${k + 1}, ${img.width}×${img.height} (download)`;
        thumb.loading = 'lazy';
        thumb.width = 96;
        thumb.height = Math.round((96 * img.height) / img.width);
        a.append(thumb);
        row.append(a);
      });
      li.append(row);
    }
    const buttons = document.createElement('div');
    buttons.className = 'buttons';
    const reuse = document.createElement('button');
    reuse.type = 'button';
    reuse.textContent = 'Use this prompt';
    reuse.addEventListener('click', () => this.actions.reuse(e));
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove the prediction of ${new Date(e.created).toLocaleString()} from the gallery`);
    remove.addEventListener('click', () => this.remove(e.id));
    buttons.append(reuse, remove);
    li.append(buttons);
    return li;
  }
}

function load(): GalleryEntry[] {
  try {
    const parsed = JSON.parse(localStorage.getItem(KEY) ?? '[]') as unknown;
    return Array.isArray(parsed) ? (parsed as GalleryEntry[]).filter((e) => typeof e?.id === 'string') : [];
  } catch {
    return [];
  }
}
