import cliProgress from 'cli-progress';

/**
 * A progress bar on stderr that only appears when the work takes more than a second, so quick
 * commands stay quiet and stdout stays clean for data (e.g. `generate --stream`).
 */
export interface Progress {
  /** `label`: a new stage (e.g. from an image's rows to its VQ decode), shown in place of the first. */
  update(done: number, total?: number, label?: string): void;
  stop(): void;
}

const SHOW_AFTER_MS = 1000;

export function progress(label: string, total: number): Progress {
  const bar = new cliProgress.SingleBar(
    { format: '{label} [{bar}] {value}/{total} {duration_formatted}', stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let current = 0;
  let shown = false;
  const timer = setTimeout(() => {
    shown = true;
    bar.start(total, current, { label });
  }, SHOW_AFTER_MS);
  timer.unref();
  return {
    update(done, newTotal, newLabel) {
      current = done;
      if (newTotal !== undefined) total = newTotal;
      if (newLabel !== undefined) label = newLabel;
      if (shown) {
        if (newTotal !== undefined) bar.setTotal(newTotal);
        bar.update(done, { label });
      }
    },
    stop() {
      clearTimeout(timer);
      if (shown) bar.stop();
    },
  };
}

/** Runs `work` under a one-step progress bar (for loads and single long calls). */
export async function withProgress<T>(label: string, work: () => Promise<T>): Promise<T> {
  const p = progress(label, 1);
  try {
    const result = await work();
    p.update(1);
    return result;
  } finally {
    p.stop();
  }
}

/** A bar per file for downloads and uploads: pass `onProgress` to the transfer, `stop` when it ends. */
export function fileProgress(verb: string): { onProgress: (file: string, done: number, size: number) => void; stop: () => void } {
  let current: { file: string; bar: Progress } | undefined;
  return {
    onProgress(file, done, size) {
      if (current?.file !== file) {
        current?.bar.stop();
        current = { file, bar: progress(`${verb} ${file}`, size) };
      }
      current.bar.update(done, size);
    },
    stop: () => current?.bar.stop(),
  };
}
