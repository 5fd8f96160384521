import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildPageParts } from '../functions/playground/build-page.ts';
import { PREBUILT_PAGE_ENV, readPrebuiltPage, type PageParts } from '../functions/playground/prebuilt-page.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * The prebuilt playground page (what the Lambda bundle carries instead of esbuild and the page's
 * sources): the file format, where the route looks for it, and the build from the sources when
 * there is none. The bundle itself is run in test/infra-api-bundle.test.ts.
 */
let api: ApiHarness;
let dir: string;
let parts: PageParts;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-prebuilt-'));
  [api, parts] = await Promise.all([startApiHarness(), buildPageParts()]);
});

afterAll(async () => {
  await api?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  delete process.env[PREBUILT_PAGE_ENV];
});

const sha = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
const write = (name: string, content: unknown) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
};

describe('the prebuilt playground page', () => {
  it('is the built page as JSON: the CSP hashes are those of the inlined script and style', async () => {
    const read = await readPrebuiltPage(import.meta.url, { [PREBUILT_PAGE_ENV]: write('page.json', parts) });
    expect(read).toEqual(parts);
    expect(parts.head).toContain('<title>Anole playground</title>');
    expect(parts.head.endsWith('<script type="application/json" id="config">')).toBe(true);
    expect(parts.scriptHash).toBe(sha(parts.tail.match(/<script>(.*?)<\/script>/s)![1]));
    expect(parts.styleHash).toBe(sha(parts.head.match(/<style>(.*?)<\/style>/s)![1]));
  });

  it('is looked for beside the running module; none there means undefined, a named file must exist and be whole', async () => {
    expect(await readPrebuiltPage(import.meta.url, {})).toBeUndefined();
    expect(await readPrebuiltPage(new URL(`file://${dir}/index.mjs`).href, {})).toBeUndefined();
    write('playground-page.json', parts);
    expect(await readPrebuiltPage(new URL(`file://${dir}/index.mjs`).href, {})).toEqual(parts);

    await expect(readPrebuiltPage(import.meta.url, { [PREBUILT_PAGE_ENV]: path.join(dir, 'missing.json') })).rejects.toThrow(
      `cannot read the prebuilt page ${path.join(dir, 'missing.json')} (${PREBUILT_PAGE_ENV})`,
    );
    const { tail: _, ...partial } = parts;
    await expect(readPrebuiltPage(import.meta.url, { [PREBUILT_PAGE_ENV]: write('partial.json', partial) })).rejects.toThrow('has no tail');
  });

  it('GET / serves the prebuilt page when there is one, with its hashes in the CSP and the app config filled in', async () => {
    const marked = { ...parts, head: parts.head.replace('<title>', '<meta name="prebuilt" content="yes"><title>'), scriptHash: "'sha256-prebuilt'" };
    process.env[PREBUILT_PAGE_ENV] = write('marked.json', marked);
    const res = await api.makeApp({ apiKeys: ['k1'] }).request('/');
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<meta name="prebuilt" content="yes">');
    expect(JSON.parse(html.match(/id="config">(.*?)<\/script>/s)![1]).keysOn).toBe(true);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'sha256-prebuilt'");
  });

  it('GET / builds the page from the sources when there is none, and answers 503 when the named one is missing', async () => {
    const built = await api.makeApp().request('/');
    expect(built.status).toBe(200);
    expect(built.headers.get('content-security-policy')).toContain(`script-src ${parts.scriptHash}`);
    expect(await built.text()).not.toContain('name="prebuilt"');

    process.env[PREBUILT_PAGE_ENV] = path.join(dir, 'missing.json');
    const res = await api.makeApp().request('/');
    expect(res.status).toBe(503);
    expect((await res.json()).error.message).toContain(PREBUILT_PAGE_ENV);
  });
});
