import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { buildPageParts } from '../functions/playground/build-page.ts';
import { PREBUILT_PAGE_FILE } from '../functions/playground/prebuilt-page.ts';
import { ENGINE_THREAD_BUNDLE } from '../sidecar/engine/engine-thread.ts';

/**
 * `npm run build [-- OUT_DIR]` (default dist/): the CLI and the engine thread as plain ES modules
 * for Node 20+, so production processes start without tsx compiling the sources (the worker image
 * runs `node dist/anole.mjs worker`). bin/anole.js keeps running the sources through tsx.
 *
 * OUT_DIR must lie inside the repository (or anywhere a node_modules with the production
 * dependencies is found above it): the external packages are resolved from there at run time.
 */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Entry name (the output file's name without .mjs) → source file, relative to the repository root. */
export const DIST_ENTRIES: Record<string, string> = {
  anole: 'cli/main.ts',
  [path.basename(ENGINE_THREAD_BUNDLE, '.mjs')]: 'sidecar/engine/engine-thread-main.ts',
};

/**
 * Left to node_modules: native bindings (onnxruntime-node, sharp, tokenizers) and esbuild itself,
 * which each find their platform's binary relative to their own files.
 */
export const EXTERNAL_PACKAGES = ['onnxruntime-node', 'sharp', 'tokenizers', 'esbuild'];

/** Files a bundled module reads beside itself (`new URL(file, import.meta.url)`), copied next to the bundles. */
const FILES_BESIDE = ['sidecar/onnx/cuda-kernels.json'];

/**
 * `anole bench` starts its children through tsx from the sources (bench/measure-*.ts): from a build
 * it fails at once, saying so, rather than measuring something else.
 */
const sourcesOnly: esbuild.Plugin = {
  name: 'sources-only',
  setup(build) {
    build.onResolve({ filter: /\/bench\/run-bench\.ts$/ }, (args) => ({ path: args.path, namespace: 'sources-only' }));
    build.onLoad({ filter: /.*/, namespace: 'sources-only' }, () => ({
      contents: "throw new Error('anole bench runs from the sources: npm run bench (or npx anole bench)');",
      loader: 'js',
    }));
  },
};

export interface BuildOptions {
  outDir: string;
  /** More entry points (name → source file relative to the repository root), e.g. the bench's cold-start child. */
  extraEntries?: Record<string, string>;
}

/** Bundles every entry into outDir/<name>.mjs, with the prebuilt playground page and the files read beside them. */
export async function buildDist({ outDir, extraEntries = {} }: BuildOptions): Promise<esbuild.Metafile> {
  const entries = { ...DIST_ENTRIES, ...extraEntries };
  await fs.mkdir(outDir, { recursive: true });
  // chunk names carry content hashes (NAME-HASH.mjs): an earlier build's would pile up beside these
  for (const file of await fs.readdir(outDir)) if (/-[A-Z0-9]{8}\.mjs(\.map)?$/.test(file)) await fs.rm(path.join(outDir, file));
  const [result, page] = await Promise.all([
    esbuild.build({
      entryPoints: Object.fromEntries(Object.entries(entries).map(([name, file]) => [name, path.join(REPO_ROOT, file)])),
      outdir: outDir,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      // the commands' dynamic imports become chunks beside the entries (flat, so that files found
      // with `new URL(file, import.meta.url)` resolve alike from any of them): a process compiles
      // only its own command's code (docs/benchmarks.md, "The CLI's build is split per command")
      splitting: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: EXTERNAL_PACKAGES,
      // Bundled CommonJS dependencies call require(); give the ES module one (as infra/service-function.ts does).
      banner: { js: "import { createRequire as anoleCreateRequire } from 'node:module'; const require = anoleCreateRequire(import.meta.url);" },
      plugins: [sourcesOnly],
      sourcemap: 'linked',
      metafile: true,
      logLevel: 'warning',
    }),
    // the API finds it beside the running module (functions/api/playground.ts), so `serve` needs no esbuild
    buildPageParts(),
  ]);
  await fs.writeFile(path.join(outDir, PREBUILT_PAGE_FILE), JSON.stringify(page));
  for (const file of FILES_BESIDE) await fs.copyFile(path.join(REPO_ROOT, file), path.join(outDir, path.basename(file)));
  return result.metafile;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const outDir = path.resolve(process.argv[2] ?? path.join(REPO_ROOT, 'dist'));
  const metafile = await buildDist({ outDir });
  for (const [file, output] of Object.entries(metafile.outputs)) {
    if (file.endsWith('.mjs')) console.error(`${path.relative(process.cwd(), file)}  ${(output.bytes / 2 ** 20).toFixed(1)} MiB`);
  }
}
