import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

/**
 * `node bin/anole.js serve` (what `npm start` runs) as a child process, on embedded defaults, in
 * a fresh working directory: it makes the tiny model and the data directory there (.cache/…), so
 * tests running side by side share nothing. PORT=0: any free port, read back from its banner.
 */
export interface ServedProcess {
  url: string;
  /** The working directory it runs in (removed by stop()). */
  cwd: string;
  stdout: string[];
  stderr: string[];
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`) and removes the directory. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const BIN = path.resolve(import.meta.dirname, '../bin/anole.js');

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/**
 * A process that runs `anole serve` (directly, or under npm): its output lines, its exit, and `ready`, the URL
 * its banner names, or an error with its stderr when it exits first or stays silent past `timeoutMs`.
 */
export function watchServing(child: ChildProcess, what: string, timeoutMs: number): { stdout: string[]; stderr: string[]; exited: Promise<Exit>; ready: Promise<string> } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<Exit>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready after ${timeoutMs} ms:\n${stderr.join('\n')}`)), timeoutMs);
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      stdout.push(l);
      const m = /^Anole is serving on (http:\/\/\S+)$/.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${stderr.join('\n')}`));
    });
  });
  return { stdout, stderr, exited, ready };
}

/** `bin`: the CLI to run, bin/anole.js (the sources through tsx) or a build's anole.mjs. */
export async function startServe(env: Record<string, string> = {}, readyTimeoutMs = 90_000, bin = BIN): Promise<ServedProcess> {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-serve-'));
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: '0', ...env };
  delete childEnv.ANOLE_MODEL; // the embedded default: the tiny preset, made on first start
  if (env.ANOLE_MODEL) childEnv.ANOLE_MODEL = env.ANOLE_MODEL;
  const child = spawn(process.execPath, [bin, 'serve'], { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const { stdout, stderr, exited, ready } = watchServing(child, 'anole serve', readyTimeoutMs);
  const url = await ready.catch((e) => {
    child.kill('SIGKILL');
    fs.rmSync(cwd, { recursive: true, force: true });
    throw e;
  });
  let stopped: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  return {
    url,
    cwd,
    stdout,
    stderr,
    child,
    exited,
    stop: (timeoutMs = 30_000) =>
      (stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const result = await exited;
        clearTimeout(killer);
        fs.rmSync(cwd, { recursive: true, force: true });
        return result;
      })()),
  };
}
