/**
 * How measure-cold-start.ts takes one figure: a fresh process (cold-start-child.ts, or the worker
 * itself from the build), after emptying the page cache, optionally with the disk's reads capped.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ReadCap } from './read-cap.ts';

const CHILD = fileURLToPath(new URL('./cold-start-child.ts', import.meta.url));
const TSX = import.meta.resolve('tsx/esm');
const DROP_CACHES = '/proc/sys/vm/drop_caches';

/** Whether this process may empty the page cache (root on Linux). */
export function canDropCaches(): boolean {
  try {
    fs.accessSync(DROP_CACHES, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Writes dirty pages out, then empties the page cache (root on Linux; see canDropCaches). */
export function emptyPageCache(): void {
  execFileSync('sync');
  fs.writeFileSync(DROP_CACHES, '3');
}

/**
 * The kernel keeps a file's pages while any process maps it, whatever is dropped: the children's
 * node executable and native libraries would stay cached while some process maps them, and a child
 * would not read them as a worker starting on a cold machine does. So the children run a copy of node
 * (`into`/node, mapped by no one else), and this names the native libraries under node_modules (ONNX
 * Runtime's, tokenizers', sharp's: what the children load) that running processes map, with the
 * processes' ids, to refuse measuring beside them.
 */
export function coldProgram(into: string): { node: string; mapped: string[] } {
  const node = path.join(into, 'node');
  fs.copyFileSync(process.execPath, node);
  fs.chmodSync(node, 0o755);
  const byFile = new Map<string, number[]>();
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let maps: string;
    try {
      maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    const files = new Set(maps.split('\n').map((line) => line.split(/\s+/)[5] ?? ''));
    for (const file of files) {
      if (/\/node_modules\/.*\.(so[.\d]*|node)$/.test(file)) byFile.set(file, [...(byFile.get(file) ?? []), Number(pid)]);
    }
  }
  return { node, mapped: [...byFile].map(([file, pids]) => `${file} (process ${pids.join(', ')})`) };
}

export interface ChildOptions {
  dropCaches: boolean;
  env: NodeJS.ProcessEnv;
  /** The node executable to run (a copy from coldProgram when the caches are dropped). */
  node: string;
  /** Reads of the disk capped, for this child and its threads. */
  cap?: ReadCap;
}

/** `node args…`, under the cap if there is one. */
const nodeCommand = (opts: ChildOptions, args: string[]): [string, string[]] => (opts.cap ? opts.cap.wrap(opts.node, args) : [opts.node, args]);

/** A fresh child: cold-start-child.ts through tsx, or its bundle when given one. */
export function child<T>(mode: 'load' | 'thread' | 'read', dir: string, opts: ChildOptions & { bundle?: string }): T {
  if (opts.dropCaches) emptyPageCache();
  const [command, args] = nodeCommand(opts, opts.bundle ? [opts.bundle, mode, dir] : ['--import', TSX, CHILD, mode, dir]);
  const run = spawnSync(command, args, { encoding: 'utf8', env: opts.env });
  if (run.status !== 0) throw new Error(`cold-start-child ${mode} ${dir}: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as T;
}

/**
 * `node <cli> worker` on `dir` until its ready line: the started_seconds it reports (process start →
 * taking jobs), in ms, and under a cap what it had read from the disk by then. It is then stopped
 * (SIGTERM, then SIGKILL if it lingers).
 */
export async function workerReady(cli: string, dir: string, opts: ChildOptions): Promise<{ ready_ms: number; read_bytes?: number }> {
  if (opts.dropCaches) emptyPageCache();
  const closed = 'http://127.0.0.1:9'; // the discard port: nothing listens, nothing is reached
  const env = {
    ...opts.env,
    ANOLE_MODEL: dir,
    ANOLE_QUEUE_URL: `${closed}/000000000000/anole-bench`,
    ANOLE_SQS_ENDPOINT: closed,
    ANOLE_S3_ENDPOINT: closed,
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    ANOLE_HEALTH_PORT: '0',
  };
  const [command, args] = nodeCommand(opts, [cli, 'worker']);
  const readBefore = opts.cap?.bytesRead();
  const worker = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  readline.createInterface({ input: worker.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  try {
    return await new Promise((resolve, reject) => {
      readline.createInterface({ input: worker.stdout! }).on('line', (line) => {
        const ready = line.startsWith('{') ? (JSON.parse(line) as { ready?: boolean; started_seconds?: number }) : {};
        if (ready.ready && ready.started_seconds !== undefined) {
          const read = readBefore === undefined ? {} : { read_bytes: opts.cap!.bytesRead() - readBefore };
          resolve({ ready_ms: ready.started_seconds * 1000, ...read });
        }
      });
      exited.then(() => reject(new Error(`worker on ${dir} exited before ready: ${stderr.join('\n')}`)));
    });
  } finally {
    worker.kill('SIGTERM');
    const lingering = setTimeout(() => worker.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(lingering);
  }
}
