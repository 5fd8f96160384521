import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { watchServing } from './serve-harness.ts';
import { waitUntil } from './wait-until.ts';

/**
 * `npm start` (issue 19, item 8): npm runs the script through `sh -c`, and forwards SIGINT / SIGTERM
 * only to that shell; unless the script `exec`s node, SIGTERM to npm killed the shell and left node
 * serving. Here the real package.json's start script runs in a fresh directory (bin/ linked, so the
 * tiny model and data are made there), and the whole process tree must be gone after one signal.
 */
const ROOT = path.resolve(import.meta.dirname, '..');

interface NpmStart {
  npm: ChildProcess;
  url: string;
  stderr: string[];
  tree: number[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: { cwd: string; pids: number[] }[] = [];
afterEach(() => {
  for (const s of started.splice(0)) {
    for (const pid of s.pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(s.cwd, { recursive: true, force: true });
  }
});

/** npm start in its own process group (as a terminal's foreground job), ready when the banner names the URL. */
async function npmStart(): Promise<NpmStart> {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-npm-start-'));
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(cwd, 'package.json'));
  fs.copyFileSync(path.join(ROOT, '.npmrc'), path.join(cwd, '.npmrc'));
  fs.symlinkSync(path.join(ROOT, 'bin'), path.join(cwd, 'bin'));
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' };
  delete env.ANOLE_MODEL;
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED; // set for tests (vitest.config.ts): npm start must not need it
  const npm = spawn('npm', ['start'], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { cwd, pids: [npm.pid!] };
  started.push(entry);
  const { stderr, exited, ready } = watchServing(npm, 'npm start', 90_000);
  const url = await ready;
  entry.pids = [npm.pid!, ...descendants(npm.pid!)];
  return { npm, url, stderr, tree: entry.pids, exited };
}

/** Every process below `pid`, from /proc (Linux). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Running (a zombie waiting for its parent to reap it counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const answers = (url: string) => fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).then(() => true, () => false);

async function expectAllGone(s: NpmStart): Promise<void> {
  await waitUntil(async () => !(await answers(s.url)), 30_000, 'the port to stop answering', 200);
  await waitUntil(() => s.tree.every((pid) => !alive(pid)), 30_000, 'every process of the tree to exit', 200);
  expect(s.tree.filter(alive)).toEqual([]);
}

describe('npm start', () => {
  it('SIGTERM to npm\'s own process stops node too: the port closes and no process of the tree is left', async () => {
    const s = await npmStart();
    expect(await answers(s.url)).toBe(true);
    expect(s.tree.length).toBeGreaterThanOrEqual(2); // npm and the node it runs (through sh unless exec'd)
    process.kill(s.npm.pid!, 'SIGTERM');
    await expectAllGone(s);
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.stderr.join('\n')).toContain('SIGTERM: stopping');
  }, 150_000);

  it('says nothing alarming under a dozen waiting requests: no MaxListenersExceededWarning, no AWS SDK Node-version notice', async () => {
    const s = await npmStart();
    const wait = () =>
      fetch(`${s.url}/v1/predictions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', prefer: 'wait=60' },
        body: JSON.stringify({ input: { prompt: 'A lighthouse at dusk.', mode: 'image' } }),
      }).then((r) => r.status);
    expect(await Promise.all(Array.from({ length: 12 }, wait))).toEqual(Array(12).fill(201));
    process.kill(s.npm.pid!, 'SIGTERM');
    await expectAllGone(s);
    const log = s.stderr.join('\n');
    expect(log).not.toContain('MaxListenersExceededWarning'); // each wait's polls left an abort listener behind
    expect(log).not.toContain('NodeVersionSupportWarning');
  }, 150_000);

  it('Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops gracefully, not as a second Ctrl-C', async () => {
    const s = await npmStart();
    expect(await answers(s.url)).toBe(true);
    process.kill(-s.npm.pid!, 'SIGINT');
    await expectAllGone(s);
    const log = s.stderr.join('\n');
    expect(log).toContain('SIGINT: stopping');
    expect(log).not.toContain('exiting without waiting'); // npm's forwarded copy is not a second Ctrl-C
    expect(await s.exited).toEqual({ code: 0, signal: null });
  }, 150_000);
});
