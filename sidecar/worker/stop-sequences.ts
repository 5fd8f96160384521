/**
 * OpenAI's `stop`: a sequence's text ends where one of the stop strings first appears, and the
 * stop string is not part of the output. Text arrives in deltas, so the tail of what has come so
 * far that could still be the start of a stop string is held back until the next delta decides.
 */
export class StopSequences {
  private held = '';
  private stoppedAt = false;

  constructor(private readonly stops: readonly string[]) {}

  get stopped(): boolean {
    return this.stoppedAt;
  }

  /** Text that is now safe to show (possibly empty); after a stop, nothing more. */
  push(delta: string): string {
    if (this.stoppedAt) return '';
    const text = this.held + delta;
    let cut = -1;
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stoppedAt = true;
      this.held = '';
      return text.slice(0, cut);
    }
    const keep = this.partialTail(text);
    this.held = text.slice(text.length - keep);
    return text.slice(0, text.length - keep);
  }

  /** The held tail, when the text ends (or an image interrupts it) without a stop string. */
  flush(): string {
    const rest = this.stoppedAt ? '' : this.held;
    this.held = '';
    return rest;
  }

  /** The longest suffix of `text` that is a proper prefix of some stop string. */
  private partialTail(text: string): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > best; n--) {
        if (stop.startsWith(text.slice(text.length - n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
