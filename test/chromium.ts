import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * The Chromium the playground test drives: $CHROMIUM, else Debian's /usr/bin/chromium. On a fresh machine
 * without it, `npm test` installs Debian's package when it runs as root with apt (as .ci/run does), and
 * otherwise fails at once with the one command to run; the test is never skipped.
 */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

export interface ChromiumHost {
  exists: (file: string) => boolean;
  isRoot: boolean;
  hasApt: boolean;
  /** Installs Debian's chromium package (apt-get update, then install). */
  install: () => void;
}

export const thisMachine: ChromiumHost = {
  exists: (file) => fs.existsSync(file),
  isRoot: process.getuid?.() === 0,
  hasApt: fs.existsSync('/usr/bin/apt-get'),
  install: () => {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'ignore', env });
  },
};

export function ensureChromium(env: NodeJS.ProcessEnv = process.env, host: ChromiumHost = thisMachine): string {
  if (env.CHROMIUM) {
    if (!host.exists(env.CHROMIUM)) throw new Error(`CHROMIUM=${env.CHROMIUM}: no such file`);
    return env.CHROMIUM;
  }
  if (host.exists(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
  if (host.isRoot && host.hasApt) {
    host.install();
    if (host.exists(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
    throw new Error(`apt-get install chromium ran but ${DEBIAN_CHROMIUM} is still missing`);
  }
  throw new Error(`the playground test drives Debian's Chromium, which is missing: run \`sudo apt-get install chromium\` (or set CHROMIUM=/path/to/chromium) and run npm test again`);
}
