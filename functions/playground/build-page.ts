import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { pageFromParts, type BuiltPage, type PageParts } from './prebuilt-page.ts';

/**
 * The playground as one HTML document: page.ts and its imports bundled by esbuild (minified, for
 * browsers of the last few years), styles.css minified, both inlined into index.html, so the page
 * is a single request. Built once per process from the sources (a few hundred ms), when the server
 * starts or at the first GET /; the Lambda gets it prebuilt instead (prebuilt-page.ts). The config
 * is filled in per app (keys on or off, defaults).
 */
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const TARGET = ['chrome110', 'firefox115', 'safari16', 'edge110'];

let built: Promise<BuiltPage> | undefined;

/** The build, once per process (a failed build is retried on the next call). */
export function playgroundPage(): Promise<BuiltPage> {
  built ??= buildPageParts().then(pageFromParts, (e) => {
    built = undefined;
    throw e;
  });
  return built;
}

export async function buildPageParts(): Promise<PageParts> {
  const [bundle, css, template] = await Promise.all([
    esbuild.build({
      entryPoints: [here('./page.ts')],
      bundle: true,
      write: false,
      format: 'iife',
      target: TARGET,
      minify: true,
      legalComments: 'none',
      logLevel: 'silent',
    }),
    fs.readFile(here('./styles.css'), 'utf8').then((source) => esbuild.transform(source, { loader: 'css', minify: true, target: TARGET })),
    fs.readFile(here('./index.html'), 'utf8'),
  ]);
  const script = bundle.outputFiles[0].text.trim();
  // esbuild escapes "</script" inside strings; anything left would end the inline script early
  if (/<\/script/i.test(script)) throw new Error('the playground bundle contains "</script"');
  const style = css.code.trim();
  const [before, after] = fill(template, '/*STYLES*/', style).split('/*CONFIG*/');
  const tail = fill(after, '/*SCRIPT*/', script);
  return { head: before, tail, scriptHash: sha256(script), styleHash: sha256(style) };
}

function fill(template: string, marker: string, value: string): string {
  const at = template.indexOf(marker);
  if (at < 0) throw new Error(`index.html has no ${marker}`);
  return template.slice(0, at) + value + template.slice(at + marker.length);
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
