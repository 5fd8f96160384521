import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Metafile } from 'esbuild';
import { buildDist, REPO_ROOT } from '../scripts/build-dist.ts';
import { startServe } from './serve-harness.ts';

/**
 * `npm run build` (scripts/build-dist.ts) into a directory of its own, then the built CLI against
 * the sources: the same tokens, an image through the bundled engine thread, no TypeScript and no
 * tsx loaded in any thread, and `serve` with the prebuilt playground page.
 */
const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/anole-tiny');
const HOOKS = new URL('./module-log-hooks.mjs', import.meta.url).href;
const run = promisify(execFile);
let outDir: string;
let work: string;
let externals: string[];
let metafile: Metafile;

beforeAll(async () => {
  // inside the repository: the bundle resolves its external packages from node_modules above it
  fs.mkdirSync(path.join(REPO_ROOT, '.cache'), { recursive: true });
  work = fs.mkdtempSync(path.join(REPO_ROOT, '.cache', 'dist-test-'));
  outDir = path.join(work, 'dist');
  // an earlier build's chunk, and a file of someone else's, in the output directory
  fs.mkdirSync(outDir);
  fs.writeFileSync(path.join(outDir, 'chunk-STALE123.mjs'), 'throw new Error("an old chunk");\n');
  fs.writeFileSync(path.join(outDir, 'keep.mjs'), '// not the build\'s\n');
  metafile = await buildDist({ outDir });
  externals = Object.values(metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
}, 60_000);
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** `node <cli> ...args` with every module URL it resolves, in any thread, logged. */
async function anole(cli: string, name: string, ...args: string[]): Promise<{ stderr: string; modules: string[] }> {
  const log = path.join(work, `${name}.modules`);
  const register = `data:text/javascript,import { register } from 'node:module'; register(${JSON.stringify(HOOKS)});`;
  const { stderr } = await run(process.execPath, ['--import', register, cli, ...args], { env: { ...process.env, ANOLE_MODULE_LOG: log }, timeout: 60_000 });
  return { stderr, modules: fs.readFileSync(log, 'utf8').trim().split('\n') };
}

const generate = (out: string, mode: string, ...more: string[]) =>
  ['generate', '--model', FIXTURE, '--prompt', 'A lighthouse at dusk', '--mode', mode, '--seed', '1', '--out', path.join(work, out), ...more];
const readResult = (out: string) => JSON.parse(fs.readFileSync(path.join(work, out, 'result.json'), 'utf8'));
const typescript = (modules: string[]) => modules.filter((url) => url.endsWith('.ts') || url.includes('/node_modules/tsx/'));

describe('the build (npm run build)', () => {
  it('generates the same tokens as the sources, with no TypeScript or tsx in any thread', async () => {
    const [built, sources] = await Promise.all([
      anole(path.join(outDir, 'anole.mjs'), 'built-text', ...generate('built-text', 'text', '--max-new-tokens', '8')),
      anole(path.join(REPO_ROOT, 'bin/anole.js'), 'sources-text', ...generate('sources-text', 'text', '--max-new-tokens', '8')),
    ]);
    const result = readResult('built-text');
    expect(result.token_ids).toHaveLength(8);
    expect(result).toEqual(readResult('sources-text'));

    // the engine thread ran from its bundle; the same log of the sources shows what it would catch
    expect(built.modules).toContain(new URL('engine-thread.mjs', `file://${outDir}/`).href);
    expect(typescript(built.modules)).toEqual([]);
    expect(sources.modules.some((url) => url.endsWith('/sidecar/engine/engine-thread-main.ts'))).toBe(true);
    expect(sources.modules.some((url) => url.endsWith('/sidecar/engine/thread-bootstrap.js'))).toBe(true);
    expect(typescript(sources.modules).length).toBeGreaterThan(20);
  });

  it('makes an image through the bundled engine thread', async () => {
    const { modules } = await anole(path.join(outDir, 'anole.mjs'), 'built-image', ...generate('built-image', 'image'));
    expect(typescript(modules)).toEqual([]);
    const result = readResult('built-image');
    expect(result.images).toHaveLength(1);
    const meta = await sharp(path.join(work, 'built-image', path.basename(result.images[0]))).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 64, height: 64 });
  });

  it('leaves to node_modules only built-in modules and production dependencies (the worker image has no others)', () => {
    const { dependencies } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const packages = [...new Set(externals.filter((name) => !isBuiltin(name)))];
    expect(packages).toContain('onnxruntime-node');
    for (const name of packages) expect(dependencies, name).toHaveProperty(name);
  });

  it('splits the commands: the CLI itself, and the worker until its model is loading, import no AWS SDK, local stack or converter', () => {
    const outputs = metafile.outputs;
    /** Source files of `output` and of every output it imports statically (what loading it evaluates). */
    const staticSources = (output: string, seen = new Set<string>()): string[] => {
      if (seen.has(output)) return [];
      seen.add(output);
      const o = outputs[output];
      return [...Object.keys(o.inputs), ...o.imports.filter((i) => i.kind === 'import-statement' && !i.external).flatMap((i) => staticSources(i.path, seen))];
    };
    const outputOf = (source: string) => Object.keys(outputs).find((file) => file.endsWith('.mjs') && source in outputs[file].inputs)!;
    const heavy = (sources: string[]) => sources.filter((f) => /node_modules\/(@aws-sdk|s3rver|local-aws-sqs|zod)\/|sidecar\/bundle\/write-bundle\.ts/.test(f));
    const cli = outputOf('cli/main.ts');
    const worker = outputOf('sidecar/worker/main.ts');
    expect(path.basename(cli)).toBe('anole.mjs');
    expect(worker).not.toBe(cli);
    expect(heavy(staticSources(cli))).toEqual([]);
    expect(heavy(staticSources(worker))).toEqual([]);
    // the worker does load the SDK, after its engine thread has started
    expect(heavy(staticSources(outputOf('sidecar/worker/start-worker.ts'))).some((f) => f.includes('@aws-sdk/client-s3'))).toBe(true);
  });

  it('the worker loads sharp (libvips, about 19 MB to read from a cold disk) at its first image, not before ready', () => {
    const outputs = metafile.outputs;
    const outputOf = (source: string) => Object.keys(outputs).find((file) => file.endsWith('.mjs') && source in outputs[file].inputs)!;
    /** External packages that loading `output` imports, through its static imports. */
    const staticExternals = (output: string, seen = new Set<string>()): string[] => {
      if (seen.has(output)) return [];
      seen.add(output);
      const statics = outputs[output].imports.filter((i) => i.kind === 'import-statement');
      return statics.flatMap((i) => (i.external ? [i.path] : staticExternals(i.path, seen)));
    };
    const worker = [...staticExternals(outputOf('sidecar/worker/main.ts')), ...staticExternals(outputOf('sidecar/worker/start-worker.ts'))];
    expect(worker).toContain('tokenizers');
    expect(worker).not.toContain('sharp');
    // the API and the CLI's image commands import it as before
    expect(staticExternals(outputOf('model/preprocess/image-processor.ts'))).toContain('sharp');
  });

  it("removes an earlier build's chunks from its output directory, and nothing else", () => {
    expect(fs.existsSync(path.join(outDir, 'chunk-STALE123.mjs'))).toBe(false);
    expect(fs.existsSync(path.join(outDir, 'keep.mjs'))).toBe(true);
  });

  it('says `anole bench` runs from the sources', async () => {
    const failed = await run(process.execPath, [path.join(outDir, 'anole.mjs'), 'bench']).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain('anole bench runs from the sources');
  });

  it('serves the playground page under `serve`, prebuilt beside the bundle', async () => {
    const served = await startServe({ ANOLE_MODEL: FIXTURE }, 60_000, path.join(outDir, 'anole.mjs'));
    try {
      const res = await fetch(`${served.url}/`);
      expect(res.status).toBe(200);
      const page = JSON.parse(fs.readFileSync(path.join(outDir, 'playground-page.json'), 'utf8'));
      expect(res.headers.get('content-security-policy')).toContain(`script-src ${page.scriptHash}`);
      expect(await res.text()).toContain(page.tail);
    } finally {
      await served.stop();
    }
  });
});
