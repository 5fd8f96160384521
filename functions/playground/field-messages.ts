/**
 * A message shown at a form control (the prompt, a number box, the images, the mode), tied to it for
 * screen readers (aria-invalid, aria-describedby); a control's message goes when it is edited, all
 * of them when the form runs again.
 */
export class FieldMessages {
  private shown = new Map<string, { control: HTMLElement; message: HTMLElement; describedBy: string | null }>();

  constructor(private readonly form: HTMLFormElement) {
    form.addEventListener('input', (e) => {
      for (const [name, { control }] of this.shown) if (control === e.target || control.contains(e.target as Node)) this.clearOne(name);
    });
  }

  /** The element that stands for a control: its input, the images' drop zone, the mode's fieldset. */
  control(name: string): HTMLElement | null {
    if (name === 'images') return this.form.querySelector<HTMLElement>('#drop');
    if (name === 'mode') return this.form.querySelector<HTMLElement>('fieldset.mode');
    const element = this.form.elements.namedItem(name);
    return element instanceof HTMLElement ? element : null;
  }

  /** The words its label shows ("Temperature", "Images"). */
  label(name: string): string {
    const control = this.control(name);
    const text =
      control instanceof HTMLInputElement || control instanceof HTMLTextAreaElement
        ? control.labels?.[0]?.textContent
        : control instanceof HTMLFieldSetElement
          ? control.querySelector('legend')?.textContent
          : control?.getAttribute('aria-labelledby')
            ? document.getElementById(control.getAttribute('aria-labelledby')!)?.textContent
            : null;
    return text?.trim() || name;
  }

  /** Shows `text` under the control, opens the settings it may sit in and focuses it; false when there is no such control. */
  show(name: string, text: string): boolean {
    const control = this.control(name);
    if (!control) return false;
    this.clearOne(name);
    const message = document.createElement('p');
    message.className = 'field-error';
    message.id = `${name}-error`;
    message.textContent = text;
    (control.closest('.field') ?? control.parentElement!).append(message);
    const describedBy = control.getAttribute('aria-describedby');
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('aria-describedby', describedBy ? `${message.id} ${describedBy}` : message.id);
    const details = control.closest('details');
    if (details) details.open = true;
    const focusable = name === 'images' ? this.form.querySelector<HTMLElement>('#pick') : name === 'mode' ? this.form.querySelector<HTMLElement>('input[name="mode"]:checked') : control;
    focusable?.focus();
    this.shown.set(name, { control, message, describedBy });
    return true;
  }

  clear(): void {
    for (const name of [...this.shown.keys()]) this.clearOne(name);
  }

  private clearOne(name: string): void {
    const entry = this.shown.get(name);
    if (!entry) return;
    entry.message.remove();
    entry.control.removeAttribute('aria-invalid');
    if (entry.describedBy) entry.control.setAttribute('aria-describedby', entry.describedBy);
    else entry.control.removeAttribute('aria-describedby');
    this.shown.delete(name);
  }
}
