import fs from 'node:fs';
import path from 'node:path';
import { lock } from 'proper-lockfile';

/**
 * One process at a time per download cache directory, across processes on the host (several
 * workers started together, a CLI run beside a worker): `<dir>.lock`, a directory made with mkdir
 * (atomic) by proper-lockfile. The holder touches it every staleMs/3 (at least 1 s); a lock older than
 * staleMs is taken to be left by a process that died (SIGKILL, a crash, a power cut) and is taken
 * over. The others poll, and run `work` once they hold it: a downloader then finds the files the
 * holder finished and fetches nothing, or resumes what a failed holder left.
 *
 * The sibling name never collides with a cache directory: S3 prefixes end in "/" (encoded "%2F"),
 * and git revisions cannot end in ".lock".
 */
export interface CacheLockOptions {
  /** Age after which an untouched lock is taken over (default 30 s; proper-lockfile's floor is 2 s). */
  staleMs?: number;
  /** Called once when another process holds the lock and this one starts waiting. */
  onWait?: (lockFile: string) => void;
}

export const DEFAULT_STALE_MS = 30_000;

/** The lock options of the environment: $ANOLE_CACHE_LOCK_STALE_SECONDS, and a line on stderr while waiting. */
export function cacheLockOptionsFromEnv(what: string): CacheLockOptions {
  const seconds = Number(process.env.ANOLE_CACHE_LOCK_STALE_SECONDS);
  const staleMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_STALE_MS;
  return {
    staleMs,
    onWait: (lockFile) =>
      process.stderr.write(`waiting for another process downloading ${what} (lock ${lockFile}; taken over if untouched for ${staleMs / 1000} s)\n`),
  };
}

export async function withCacheLock<T>(dir: string, work: () => Promise<T>, opts: CacheLockOptions = {}): Promise<T> {
  const staleMs = opts.staleMs ?? DEFAULT_STALE_MS;
  const lockFile = `${dir}.lock`;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  let compromised: Error | undefined;
  const options = {
    lockfilePath: lockFile,
    realpath: false, // the directory need not exist yet
    stale: staleMs,
    update: staleMs / 3,
    // the default throws from a timer (an uncaught exception): fail the download instead, below
    onCompromised: (e: Error) => void (compromised ??= e),
  };
  let release: () => Promise<void>;
  try {
    release = await lock(dir, options);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    opts.onWait?.(lockFile);
    const poll = Math.min(1000, staleMs / 4);
    release = await lock(dir, { ...options, retries: { forever: true, factor: 1, minTimeout: poll, maxTimeout: poll } });
  }
  try {
    const result = await work();
    // another process may have taken the directory over and written into it alongside this one
    if (compromised) throw new Error(`${dir}: lost the download lock ${lockFile} (${compromised.message}); run again`);
    return result;
  } finally {
    await release().catch((e: Error) => {
      if (!compromised) throw e;
    });
  }
}
