import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * Issue 19, item 6: onnxruntime-node's install script downloads CUDA libraries from NuGet (unreachable
 * here: `npm ci` fails), and `.npmrc`'s old `onnxruntime-node-install=skip` made npm warn
 * `Unknown project config` on every call. npm 10 (Node 20 and 22) ignores package.json's allowScripts,
 * so `.npmrc` says ignore-scripts, a setting every npm knows.
 */

/** npm as a user's shell runs it: no npm_config_* inherited from an `npm test` around this test. */
function npm(...args: string[]) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_config_')));
  const r = spawnSync('npm', args, { env, encoding: 'utf8' });
  expect(r.status, `npm ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

describe('npm install scripts', () => {
  it('the project config turns dependency install scripts off and npm warns about nothing in it', () => {
    const r = npm('config', 'get', 'ignore-scripts');
    expect(r.stdout.trim()).toBe('true');
    expect(r.stderr).not.toMatch(/npm warn/i);
  });

  it('allowScripts names every locked package with an install script (npm 11.16+ warns about the others)', () => {
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
    const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
    const scripted = Object.entries(lock.packages as Record<string, { hasInstallScript?: boolean }>)
      .filter(([where, p]) => where !== '' && p.hasInstallScript)
      .map(([where]) => where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(scripted).toContain('onnxruntime-node');
    expect(scripted.filter((name) => !(name in pkg.allowScripts))).toEqual([]);
    expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
  });
});
