import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../contract/s3.ts';
import { parseS3Uri } from '../contract/s3-uri.ts';
import { startLocalStack, type LocalStack } from '../dev/local-stack.ts';
import { hubCacheDir } from '../sidecar/bundle/hub-download.ts';
import { verifyBundle } from '../sidecar/bundle/manifest.ts';
import { DEFAULT_PART_BYTES, s3CacheDir } from '../sidecar/bundle/s3-download.ts';
import { uploadBundle } from '../sidecar/bundle/s3-upload.ts';
import { writeBundle } from '../sidecar/bundle/write-bundle.ts';
import { startFakeHub, type FakeHub, type FakeHubFile } from './fake-hub-server.ts';
import { waitUntil } from './wait-until.ts';

/**
 * Several processes resolving one model location at once (workers started together, a CLI run
 * beside a worker): real child processes against the local S3 server and the local Hub stand-in,
 * with the file that matters held back by the server so that the race is certain, not lucky.
 */
const FIXTURE = 'test/fixtures/anole-tiny';
const HF_FILES = ['config.json', 'generation_config.json', 'preprocessor_config.json', 'processor_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
const REPO = 'leloy/Anole-tiny-hf';
const TOKEN = 'hf_fixture_token';
const WAITING = 'waiting for another process downloading';

let stack: LocalStack;
let gate: S3Gate;
let hub: FakeHub;
let tmp: string;
let localBundle: string;

/** Held requests: arrived resolves at the first one, release() lets them all through. */
interface Hold {
  arrived: Promise<void>;
  release(): void;
}

function newHold(): Hold & { arrive(): void; released: Promise<void> } {
  let arrive!: () => void;
  let release!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  return { arrived, arrive, released, release };
}

/** A real HTTP hop in front of the local S3 server: counts object GETs by key and can hold a key's requests. */
interface S3Gate {
  endpoint: string;
  gets: Map<string, number>;
  hold(key: string): Hold;
  close(): Promise<void>;
}

async function startS3Gate(upstream: string, bucket: string): Promise<S3Gate> {
  const target = new URL(upstream);
  const gets = new Map<string, number>();
  const holds = new Map<string, ReturnType<typeof newHold>>();
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url!, 'http://s3');
    // path-style: /<bucket> is a listing, /<bucket>/<key> an object
    const key = pathname.startsWith(`/${bucket}/`) ? decodeURIComponent(pathname.slice(bucket.length + 2)) : undefined;
    if (key !== undefined && req.method === 'GET') gets.set(key, (gets.get(key) ?? 0) + 1);
    const held = key === undefined ? undefined : holds.get(key);
    if (held) {
      held.arrive();
      await held.released;
      if (res.destroyed) return; // its process was killed meanwhile
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode!, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    gets,
    hold(key) {
      const h = newHold();
      holds.set(key, h);
      return {
        arrived: h.arrived,
        release: () => {
          holds.delete(key);
          h.release();
        },
      };
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** `resolveModelLocation(location)` in a process of its own (test/resolve-location-child.ts). */
interface ResolveChild {
  pid: number;
  /** Files whose bytes this process received. */
  downloading: string[];
  stderr: string[];
  /** Resolves when it says that it waits for another process. */
  waiting: Promise<void>;
  /** Its answer, once it exits 0. */
  result: Promise<{ dir: string; sha256: Record<string, string> }>;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

function resolveInChild(location: string, env: Record<string, string>): ResolveChild {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/resolve-location-child.ts', location], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const downloading: string[] = [];
  const stderr: string[] = [];
  let answer: { dir: string; sha256: Record<string, string> } | undefined;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let saidWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (saidWaiting = resolve));
  readline.createInterface({ input: child.stderr! }).on('line', (l) => {
    stderr.push(l);
    if (l.includes(WAITING)) saidWaiting();
  });
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    const message = JSON.parse(l);
    if (message.downloading) downloading.push(message.downloading);
    else answer = message;
  });
  const result = exited.then((code) => {
    if (code !== 0 || !answer) throw new Error(`resolve of ${location} exited ${code}:\n${stderr.join('\n')}`);
    return answer;
  });
  result.catch(() => {}); // awaited by the test that needs it
  return { pid: child.pid!, downloading, stderr, waiting, result, exited, kill: (signal) => child.kill(signal) };
}

/** A hang guard: a lock that is never given up fails the test with this message, not at vitest's timeout. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** When a lock was last touched (its directory's mtime, which the holder renews), or undefined when there is none. */
function touchedAt(lockDir: string): number | undefined {
  try {
    return fs.statSync(lockDir).mtimeMs;
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  stack = await startLocalStack();
  gate = await startS3Gate(stack.s3.endpoint!, stack.s3.bucket);
  const files: Record<string, FakeHubFile> = {};
  for (const name of HF_FILES) files[name] = { content: fs.readFileSync(path.join(FIXTURE, name)), lfs: name.endsWith('.safetensors') || name === 'tokenizer.json' };
  hub = await startFakeHub(REPO, files, TOKEN);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'anole-cache-lock-'));
  localBundle = path.join(tmp, 'local-fp32');
  await writeBundle({ from: FIXTURE, out: localBundle, precision: { dtype: 'fp32', target: 'cpu' } });
});

afterAll(async () => {
  await hub?.close();
  await gate?.close();
  await stack?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The bundle under `prefix`, and what the children need to reach it through the gate. */
async function uploadTo(prefix: string, cache: string, staleSeconds: number): Promise<{ location: string; env: Record<string, string> }> {
  const s3 = createS3Client(stack.s3);
  await uploadBundle({ s3, dir: localBundle, to: parseS3Uri(`s3://${stack.s3.bucket}/${prefix}`) });
  s3.destroy();
  return {
    location: `s3://${stack.s3.bucket}/${prefix}`,
    env: { ...stack.env, ANOLE_S3_ENDPOINT: gate.endpoint, ANOLE_S3_CACHE: cache, ANOLE_CACHE_LOCK_STALE_SECONDS: String(staleSeconds) },
  };
}

describe('one download per cache directory across processes', () => {
  it('two processes resolving one s3:// location at once: one downloads, the other waits (past the stale timeout) and gets the same directory', async () => {
    const staleSeconds = 3;
    const cache = path.join(tmp, 's3-shared');
    const { location, env } = await uploadTo('models/shared/', cache, staleSeconds);
    const hold = gate.hold('models/shared/model.safetensors');
    const children = [resolveInChild(location, env), resolveInChild(location, env)];
    try {
      // one is fetching the weights (held here), the other says it waits for it
      await within(Promise.all([hold.arrived, Promise.race(children.map((c) => c.waiting))]), 30_000, 'one downloading while the other waits');
      // past the stale timeout by the lock's own clock (its mtime, not a guessed sleep): the holder has
      // touched it staleSeconds after it was first seen, so the waiter, polling all along, found it fresh
      const lockDir = `${s3CacheDir(cache, parseS3Uri(location))}.lock`;
      const seen = touchedAt(lockDir)!;
      await waitUntil(() => (touchedAt(lockDir) ?? 0) >= seen + staleSeconds * 1000, 30_000, 'the holder to touch its lock past the stale timeout', 100);
      hold.release();
      const [a, b] = await within(Promise.all(children.map((c) => c.result)), 30_000, 'both resolves');

      expect(a).toEqual(b);
      const dir = s3CacheDir(cache, parseS3Uri(location));
      expect(a.dir).toBe(dir);
      const manifest = await verifyBundle(dir);
      expect(Object.keys(a.sha256).sort()).toEqual([...Object.keys(manifest.files), 'manifest.json'].sort());
      for (const [name, { sha256 }] of Object.entries(manifest.files)) expect(a.sha256[name], name).toBe(sha256);

      // every object fetched once (a GET per part), all by the process that did not wait
      const once = Object.fromEntries(Object.keys(a.sha256).map((f) => [`models/shared/${f}`, Math.max(1, Math.ceil(fs.statSync(path.join(dir, f)).size / DEFAULT_PART_BYTES))]));
      expect(once['models/shared/model.safetensors']).toBeGreaterThan(1); // parts fetched at once by one process, not two
      expect(Object.fromEntries([...gate.gets].filter(([key]) => key.startsWith('models/shared/')))).toEqual(once);
      const [downloader, waiter] = children[0].stderr.some((l) => l.includes(WAITING)) ? [children[1], children[0]] : children;
      expect(downloader.stderr.filter((l) => l.includes(WAITING))).toEqual([]);
      expect(downloader.downloading).toContain('model.safetensors');
      expect(waiter.downloading).toEqual([]);
      expect(fs.existsSync(`${dir}.lock`)).toBe(false);
    } finally {
      hold.release();
      for (const c of children) c.kill('SIGKILL');
    }
  });

  it('a lock left by a process killed mid-download is taken over after the stale timeout, and the download finishes', async () => {
    const cache = path.join(tmp, 's3-stale');
    const { location, env } = await uploadTo('models/stale/', cache, 2);
    const dir = s3CacheDir(cache, parseS3Uri(location));
    const hold = gate.hold('models/stale/model.safetensors');
    const killed = resolveInChild(location, env);
    try {
      await within(hold.arrived, 30_000, 'the first process reaching the weights');
      killed.kill('SIGKILL');
      expect(await killed.exited).toBe(null);
    } finally {
      hold.release();
    }
    expect(fs.existsSync(`${dir}.lock`)).toBe(true); // left behind: nobody released it

    const later = resolveInChild(location, env);
    try {
      const { dir: got, sha256 } = await within(later.result, 30_000, 'a resolve after the killed one');
      expect(got).toBe(dir);
      const manifest = await verifyBundle(dir);
      for (const [name, { sha256: expected }] of Object.entries(manifest.files)) expect(sha256[name], name).toBe(expected);
      expect(fs.existsSync(`${dir}.lock`)).toBe(false);
    } finally {
      later.kill('SIGKILL');
    }
  });

  it('two processes resolving one Hub repo id at once: each file is downloaded once', async () => {
    const cache = path.join(tmp, 'hub-shared');
    const env = { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN, ANOLE_HUB_CACHE: cache, ANOLE_CACHE_LOCK_STALE_SECONDS: '3' };
    const hold = hub.hold('model.safetensors');
    hub.requests.length = 0;
    const children = [resolveInChild(REPO, env), resolveInChild(REPO, env)];
    try {
      await within(Promise.all([hold.arrived, Promise.race(children.map((c) => c.waiting))]), 30_000, 'one downloading while the other waits');
      hold.release();
      const [a, b] = await within(Promise.all(children.map((c) => c.result)), 30_000, 'both resolves');

      expect(a).toEqual(b);
      expect(a.dir).toBe(hubCacheDir(cache, REPO));
      for (const name of HF_FILES) expect(fs.readFileSync(path.join(a.dir, name)).equals(fs.readFileSync(path.join(FIXTURE, name))), name).toBe(true);
      // @huggingface/hub asks for bytes=0-0 of a file (its size and ETag) before its content
      const contents = hub.requests.filter((r) => r.path.includes('/resolve/') && r.range !== 'bytes=0-0').map((r) => r.path.split('/resolve/main/')[1]);
      expect(contents.sort()).toEqual([...HF_FILES].sort());
      const [downloader, waiter] = children[0].stderr.some((l) => l.includes(WAITING)) ? [children[1], children[0]] : children;
      expect(downloader.downloading.sort()).toEqual([...HF_FILES].sort());
      expect(waiter.downloading).toEqual([]);
      expect(fs.existsSync(`${a.dir}.lock`)).toBe(false);
    } finally {
      hold.release();
      for (const c of children) c.kill('SIGKILL');
    }
  });
});
