/**
 * Turns a growing list of byte-level BPE tokens into text deltas. A token can end in the middle
 * of a UTF-8 character, so a delta is held back while the decoded text ends in U+FFFD.
 */
export class TextStream {
  private tokens: number[] = [];
  private emitted = '';

  constructor(private readonly decode: (ids: number[]) => Promise<string>) {}

  /** Adds tokens; returns the new text that is safe to show (possibly empty). */
  async push(ids: number[]): Promise<string> {
    this.tokens.push(...ids);
    const text = await this.decode(this.tokens);
    if (text.endsWith('\uFFFD')) return '';
    const delta = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : text;
    this.emitted = text;
    return delta;
  }

  /** Everything, including a trailing incomplete character. */
  async flush(): Promise<string> {
    const text = await this.decode(this.tokens);
    const delta = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : text;
    this.emitted = text;
    return delta;
  }

  get text(): string {
    return this.emitted;
  }
}
