import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { downloadFile, listFiles, type ListFileEntry } from '@huggingface/hub';

/**
 * A Hugging Face Hub repository (e.g. the gated leloy/Anole-7b-v0.1-hf, HF_TOKEN) downloaded with
 * @huggingface/hub into `cacheDir/<owner>--<name>/<revision>/`, file by file:
 * - resumable: bytes land in `<file>.partial` and a later call continues with a Range request
 *   from where it stopped;
 * - checked: every file's size, and its sha256 (LFS files) or git blob sha1 (small files) against
 *   the Hub's listing, before it is renamed into place; a finished file is recorded in
 *   `.anole-download.json` so the next call does not hash it again.
 */
export interface HubDownloadOptions {
  repo: string;
  revision?: string;
  cacheDir: string;
  /** Default https://huggingface.co; tests point it at a local server. */
  hubUrl?: string;
  /** Default $HF_TOKEN. */
  accessToken?: string;
  fetch?: typeof fetch;
  /** Called as bytes arrive: (file, bytes so far, file size). */
  onProgress?: (file: string, done: number, size: number) => void;
}

const RECORD = '.anole-download.json';
const REPO_ID = /^[\w.-]+\/[\w.-]+$/;

/** `owner/name` that is not a directory on disk: a Hub repo id. */
export function isHubRepoId(location: string): boolean {
  return REPO_ID.test(location) && !fs.existsSync(location);
}

/** The local directory a repo is downloaded into (one per repo and revision). */
export function hubCacheDir(cacheDir: string, repo: string, revision = 'main'): string {
  return path.join(cacheDir, repo.replace('/', '--'), revision);
}

export async function downloadHubRepo(opts: HubDownloadOptions): Promise<string> {
  const revision = opts.revision ?? 'main';
  const accessToken = opts.accessToken ?? process.env.HF_TOKEN ?? undefined;
  const common: HubCall = { repo: opts.repo, revision, hubUrl: opts.hubUrl, fetch: opts.fetch, ...(accessToken ? { accessToken } : {}) };
  const dir = hubCacheDir(opts.cacheDir, opts.repo, revision);
  fs.mkdirSync(dir, { recursive: true });
  const recordFile = path.join(dir, RECORD);
  const record: Record<string, string> = fs.existsSync(recordFile) ? JSON.parse(fs.readFileSync(recordFile, 'utf8')) : {};

  const entries: ListFileEntry[] = [];
  for await (const entry of listFiles({ ...common, recursive: true })) if (entry.type === 'file') entries.push(entry);
  for (const entry of entries) {
    const target = path.join(dir, entry.path);
    const expected = expectedHash(entry);
    if (record[entry.path] === expected && fs.existsSync(target) && fs.statSync(target).size === entry.size) continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    await downloadOne(common, entry, target, opts.onProgress);
    record[entry.path] = expected;
    fs.writeFileSync(recordFile, JSON.stringify(record, null, 2));
  }
  return dir;
}

/** sha256 of an LFS file's content, or the git blob sha1 of a small file. */
function expectedHash(entry: ListFileEntry): string {
  if (entry.lfs) return `sha256:${entry.lfs.oid}`;
  if (!entry.oid) throw new Error(`${entry.path}: the Hub listing gives no hash for it`);
  return `sha1:${entry.oid}`;
}

interface HubCall {
  repo: string;
  revision: string;
  hubUrl?: string;
  fetch?: typeof fetch;
  accessToken?: string;
}

async function downloadOne(common: HubCall, entry: ListFileEntry, target: string, onProgress?: HubDownloadOptions['onProgress']): Promise<void> {
  const partial = `${target}.partial`;
  let have = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
  if (have > entry.size) {
    fs.rmSync(partial);
    have = 0;
  }
  if (have < entry.size) {
    const blob = await downloadFile({ ...common, path: entry.path, xet: false });
    if (!blob) throw new Error(`${entry.path}: listed by the Hub but not downloadable`);
    if (blob.size !== entry.size) throw new Error(`${entry.path}: the Hub serves ${blob.size} bytes but lists ${entry.size}`);
    let done = have;
    const body = Readable.fromWeb(blob.slice(have).stream() as import('node:stream/web').ReadableStream);
    body.on('data', (chunk: Buffer) => onProgress?.(entry.path, (done += chunk.length), entry.size));
    const out = fs.createWriteStream(partial, { flags: 'a' });
    try {
      await pipeline(body, out);
    } catch (e) {
      // let writes already handed to the OS land, so the next call resumes from the true size
      if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
      throw e;
    }
  }
  const size = fs.statSync(partial).size;
  const actual = await fileHash(partial, entry);
  if (size !== entry.size || actual !== expectedHash(entry)) {
    fs.rmSync(partial, { force: true });
    throw new Error(`${target}: downloaded ${size} bytes with ${actual}, the Hub lists ${entry.size} bytes with ${expectedHash(entry)}; removed, download again`);
  }
  fs.renameSync(partial, target);
}

async function fileHash(file: string, entry: ListFileEntry): Promise<string> {
  const lfs = entry.lfs !== undefined;
  const hash = crypto.createHash(lfs ? 'sha256' : 'sha1');
  // git hashes a blob as "blob <size>\0<content>"
  if (!lfs) hash.update(`blob ${fs.statSync(file).size}\0`);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 << 20 })) hash.update(chunk as Buffer);
  return `${lfs ? 'sha256' : 'sha1'}:${hash.digest('hex')}`;
}
