import fs from 'node:fs';
import path from 'node:path';
import { buildPageParts } from './build-page.ts';
import { PREBUILT_PAGE_FILE } from './prebuilt-page.ts';

/**
 * `npx tsx functions/playground/prebuild-page.ts DIR`: builds the playground and writes it to
 * DIR/playground-page.json, where a bundled API module in DIR finds it. The Lambda's bundling runs
 * this (infra/api.ts), since the bundle has neither esbuild nor the page's sources.
 */
const [dir] = process.argv.slice(2);
if (!dir) throw new Error('usage: prebuild-page.ts DIR (the directory of the bundled API module)');
const file = path.join(dir, PREBUILT_PAGE_FILE);
fs.writeFileSync(file, JSON.stringify(await buildPageParts()));
console.error(`playground page: ${file}`);
