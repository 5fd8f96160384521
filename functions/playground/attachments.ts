/**
 * The images attached to the next prompt: dropped on the drop zone, pasted, or chosen with the
 * file picker (a real button, so the keyboard reaches it). Each is listed with a button to remove
 * it. Type and count are checked here only to say so early; the server checks everything again.
 */
export class Attachments {
  private files: File[] = [];

  constructor(
    private readonly els: { drop: HTMLElement; picker: HTMLInputElement; pick: HTMLButtonElement; list: HTMLUListElement },
    private readonly limits: { maxImages: number; types: readonly string[] },
    private readonly complain: (message: string) => void,
  ) {
    els.picker.accept = limits.types.join(',');
    els.pick.addEventListener('click', () => els.picker.click());
    els.picker.addEventListener('change', () => {
      this.add([...(els.picker.files ?? [])]);
      els.picker.value = '';
    });
    els.drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      els.drop.classList.add('over');
    });
    els.drop.addEventListener('dragleave', () => els.drop.classList.remove('over'));
    els.drop.addEventListener('drop', (e) => {
      e.preventDefault();
      els.drop.classList.remove('over');
      this.add([...(e.dataTransfer?.files ?? [])]);
    });
    this.render();
  }

  get all(): readonly File[] {
    return this.files;
  }

  add(files: File[]): void {
    const refused = files.filter((f) => !this.limits.types.includes(f.type));
    if (refused.length > 0) this.complain(`${refused.map((f) => f.name).join(', ')}: not an image type the server reads (${this.limits.types.map((t) => t.replace('image/', '')).join(', ')}).`);
    const room = this.limits.maxImages - this.files.length;
    const taken = files.filter((f) => this.limits.types.includes(f.type));
    if (taken.length > room) this.complain(`At most ${this.limits.maxImages} images per prompt: ${taken.length - room} left out.`);
    this.files = [...this.files, ...taken.slice(0, Math.max(0, room))];
    this.render();
  }

  clear(): void {
    this.files = [];
    this.render();
  }

  private render(): void {
    // the images changed: as an edit of a control does, it clears a message shown at them (field-messages.ts)
    this.els.drop.dispatchEvent(new Event('input', { bubbles: true }));
    this.els.list.replaceChildren(
      ...this.files.map((f, k) => {
        const li = document.createElement('li');
        const name = document.createElement('span');
        name.textContent = `${f.name} (${Math.ceil(f.size / 1024)} KB)`;
        const remove = document.createElement('button');
        remove.type = 'button';
        remove.textContent = 'Remove';
        remove.setAttribute('aria-label', `Remove ${f.name}`);
        remove.addEventListener('click', () => {
          this.files = this.files.filter((_, j) => j !== k);
          this.render();
          this.els.pick.focus();
        });
        li.append(name, ' ', remove);
        return li;
      }),
    );
  }
}
