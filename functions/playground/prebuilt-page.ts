import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { PlaygroundConfig } from './page-config.ts';

/**
 * The built playground as data: index.html cut where the per-app config goes, with the minified
 * script and style already inlined, and their CSP hashes. build-page.ts makes it with esbuild; the
 * Lambda bundle carries it as a JSON file (PREBUILT_PAGE_FILE beside its index.mjs, written at
 * bundling time by prebuild-page.ts), since esbuild and the page's sources are not in the bundle.
 */
export interface PageParts {
  /** Everything before the config's JSON. */
  head: string;
  /** Everything after it. */
  tail: string;
  /** CSP source expressions (`'sha256-…'`) for the inline script and style. */
  scriptHash: string;
  styleHash: string;
}

/** The page for one app: its config filled in. */
export interface BuiltPage {
  html(config: PlaygroundConfig): string;
  scriptHash: string;
  styleHash: string;
}

export const PREBUILT_PAGE_FILE = 'playground-page.json';
/** A prebuilt page elsewhere than beside the running module. */
export const PREBUILT_PAGE_ENV = 'ANOLE_PLAYGROUND_PAGE';

export function pageFromParts(parts: PageParts): BuiltPage {
  return {
    // "<" escaped: a config string can never close the inline script
    html: (config) => parts.head + JSON.stringify(config).replaceAll('<', '\\u003c') + parts.tail,
    scriptHash: parts.scriptHash,
    styleHash: parts.styleHash,
  };
}

/**
 * The prebuilt page for a module at `moduleUrl`: the file PREBUILT_PAGE_ENV names (which must
 * exist), else PREBUILT_PAGE_FILE beside the module; undefined when there is none (running from
 * the sources, where the page is built instead).
 */
export async function readPrebuiltPage(moduleUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<PageParts | undefined> {
  const named = env[PREBUILT_PAGE_ENV];
  const file = named || fileURLToPath(new URL(PREBUILT_PAGE_FILE, moduleUrl));
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if (!named && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the prebuilt page ${file}${named ? ` (${PREBUILT_PAGE_ENV})` : ''}: ${(e as Error).message}`);
  }
  const parts = JSON.parse(text) as Partial<PageParts>;
  for (const key of ['head', 'tail', 'scriptHash', 'styleHash'] as const) {
    if (typeof parts[key] !== 'string') throw new Error(`the prebuilt page ${file} has no ${key}`);
  }
  return parts as PageParts;
}
