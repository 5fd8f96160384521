import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * The layers' import rules, as the folders each top-level folder may import from (besides itself). Everything
 * else is a wrong arrow: functions/ (the API Lambda) never reaches sidecar/ (the GPU worker) or cli/, sidecar/
 * never reaches functions/ or cli/, and model/ and contract/, which both sides use, import neither side.
 */
export const LAYER_RULES: Record<string, readonly string[]> = {
  model: [],
  contract: ['model'],
  functions: ['contract', 'model'],
  sidecar: ['contract', 'model'],
  infra: ['functions', 'contract', 'model'], // the Lambda handlers wrap the API; the CDK app never loads the worker
  cli: ['functions', 'sidecar', 'contract', 'model', 'dev', 'bench', 'package.json'], // cli/ composes both sides
};

export interface WrongArrow {
  file: string;
  line: number;
  specifier: string;
  /** The top-level folder (or root file) the import lands in. */
  target: string;
}

/**
 * Every relative import of `files` (repository-relative path → source text) that lands in a folder its own
 * top-level folder may not import from. Read by TypeScript's own pre-parser: `import`, `import type`,
 * `export … from`, side-effect imports and `import('…')` with a literal path; comments and strings are not imports.
 */
export function wrongArrows(files: ReadonlyMap<string, string>, rules: Record<string, readonly string[]> = LAYER_RULES): WrongArrow[] {
  const wrong: WrongArrow[] = [];
  for (const [file, source] of files) {
    const layer = file.split('/')[0];
    const allowed = rules[layer];
    if (!allowed) continue;
    for (const imported of ts.preProcessFile(source, true, true).importedFiles) {
      const specifier = imported.fileName;
      if (!specifier.startsWith('.')) continue; // a package
      const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      const target = resolved.split('/')[0];
      if (target === layer || allowed.includes(target)) continue;
      const line = source.slice(0, imported.pos).split('\n').length;
      wrong.push({ file, line, specifier, target });
    }
  }
  return wrong;
}

/** The TypeScript sources under `folders` of the repository at `root`, keyed by repository-relative path. */
export function readSources(root: string, folders: readonly string[]): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') walk(rel);
      } else if (/\.(ts|tsx|mts|cts)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
        files.set(rel, fs.readFileSync(path.join(root, rel), 'utf8'));
      }
    }
  };
  for (const folder of folders) walk(folder);
  return files;
}

export const describeArrow = (a: WrongArrow) => `${a.file}:${a.line} imports '${a.specifier}' (${a.file.split('/')[0]}/ → ${a.target}/)`;
