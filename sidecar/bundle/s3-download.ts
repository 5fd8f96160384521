import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { formatS3Uri, type S3Location } from '../../contract/s3-uri.ts';
import { MANIFEST, parseManifest } from './manifest.ts';
import { listObjects, type ListedObject } from './s3-listing.ts';

/**
 * A model under `s3://bucket/prefix/`, a bundle (it has manifest.json) or a Hugging Face directory
 * uploaded as is, downloaded into `cacheDir/<bucket>/<prefix, URI-encoded>/`:
 * - checked: a bundle's files by size and sha256 against its manifest (only the files it names are
 *   fetched); a Hugging Face directory's by size against the listing and, where the ETag is a plain
 *   MD5 (single-part uploads), by MD5. A file that fails is fetched once more, then the error names it.
 * - resumable: a file arrives as ranged GETs, a few at a time, each written at its offset into
 *   `<file>.partial` with the finished parts listed in `<file>.partial.json`, so an interrupted
 *   download continues with the parts it lacks. A checked file is renamed into place and recorded
 *   with its ETag, so the next call lists the prefix and downloads nothing.
 * - manifest.json is written last: the directory is a bundle only once every file it names is there.
 * Files in the cache directory that the prefix no longer holds are removed (a replaced model).
 */
export interface S3DownloadOptions {
  s3: S3Client;
  from: S3Location;
  cacheDir: string;
  /** Bytes per ranged GET (default 16 MiB): memory stays at a stream chunk per GET in flight whatever the part size. */
  partBytes?: number;
  /** Ranged GETs in flight at once (default 4). */
  concurrency?: number;
  /** Called as bytes arrive: (file, bytes so far, file size). */
  onProgress?: (file: string, done: number, size: number) => void;
}

export const DEFAULT_PART_BYTES = 16 << 20;
const DEFAULT_CONCURRENCY = 4;
const RECORD = '.anole-download.json';

/** An object to download; its name is its path in the local directory too. */
interface RemoteFile extends ListedObject {
  /** From the bundle's manifest. */
  sha256?: string;
}

type DownloadRecord = Record<string, { etag: string; size: number; sha256?: string }>;

/** The local directory a location is downloaded into (one per bucket and prefix). */
export function s3CacheDir(cacheDir: string, from: S3Location): string {
  // the root of a bucket is "/", which no prefix can be (parseS3Uri drops leading-only slashes to "")
  return path.join(cacheDir, from.bucket, encodeURIComponent(from.prefix || '/'));
}

export async function downloadS3Model(opts: S3DownloadOptions): Promise<string> {
  const { s3, from } = opts;
  const uri = formatS3Uri(from);
  const dir = s3CacheDir(opts.cacheDir, from);
  const listed = await listPrefix(s3, from);
  if (listed.size === 0) throw new Error(`${uri}: no objects there (no model under this prefix)`);
  fs.mkdirSync(dir, { recursive: true });
  const record = readRecord(dir);
  const saveRecord = () => {
    // renamed into place: a crash mid-write must not lose the record of files already checked
    fs.writeFileSync(path.join(dir, `${RECORD}.tmp`), JSON.stringify(record, null, 2));
    fs.renameSync(path.join(dir, `${RECORD}.tmp`), path.join(dir, RECORD));
  };
  const ctx: FetchContext = { s3, from, partBytes: opts.partBytes ?? DEFAULT_PART_BYTES, concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY, onProgress: opts.onProgress };

  const manifestObject = listed.get(MANIFEST);
  let manifestText: string | undefined;
  let wanted: RemoteFile[];
  if (manifestObject) {
    manifestText = await manifestOf(ctx, manifestObject, dir, record);
    wanted = bundleFiles(from, manifestText, listed);
  } else {
    if (!listed.has('config.json')) throw new Error(`${uri}: neither a model bundle (${MANIFEST}) nor a Hugging Face directory (config.json)`);
    wanted = [...listed.values()];
  }
  removeStale(dir, new Set([...wanted.map((f) => f.name), ...(manifestObject ? [MANIFEST] : [])]));

  for (const file of wanted) {
    const target = path.join(dir, file.name);
    if (isRecorded(record, file, target)) continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    await fetchChecked(ctx, file, target);
    record[file.name] = { etag: file.etag, size: file.size, ...(file.sha256 ? { sha256: file.sha256 } : {}) };
    saveRecord();
  }
  if (manifestObject && manifestText !== undefined && !record[MANIFEST]) {
    const local = path.join(dir, MANIFEST);
    fs.writeFileSync(`${local}.partial`, manifestText);
    fs.renameSync(`${local}.partial`, local);
    record[MANIFEST] = { etag: manifestObject.etag, size: manifestObject.size };
    saveRecord();
  }
  return dir;
}

/** The manifest's text: the local copy when it is the one S3 lists, else fetched (and the stale copy removed). */
async function manifestOf(ctx: FetchContext, object: RemoteFile, dir: string, record: DownloadRecord): Promise<string> {
  const local = path.join(dir, MANIFEST);
  if (isRecorded(record, object, local)) return fs.readFileSync(local, 'utf8');
  // a new bundle under the prefix: the directory stops being a bundle until all of it is here
  fs.rmSync(local, { force: true });
  delete record[MANIFEST];
  return fetchSmall(ctx, object);
}

/** The files a bundle's manifest names, each listed in S3 with the size the manifest gives. */
function bundleFiles(from: S3Location, manifestText: string, listed: Map<string, RemoteFile>): RemoteFile[] {
  const manifest = parseManifest(manifestText, formatS3Uri(from, MANIFEST));
  return Object.entries(manifest.files).map(([name, { bytes, sha256 }]) => {
    const object = listed.get(name);
    if (!object) throw new Error(`${formatS3Uri(from, name)}: missing (listed in ${MANIFEST})`);
    if (object.size !== bytes) throw new Error(`${formatS3Uri(from, name)}: ${object.size} bytes in S3, ${MANIFEST} says ${bytes}`);
    return { ...object, sha256 };
  });
}

interface FetchContext {
  s3: S3Client;
  from: S3Location;
  partBytes: number;
  concurrency: number;
  onProgress?: S3DownloadOptions['onProgress'];
}

/** Every object under the prefix by its name there, less "folder" placeholders that consoles create. */
async function listPrefix(s3: S3Client, from: S3Location): Promise<Map<string, RemoteFile>> {
  let objects;
  try {
    objects = await listObjects(s3, from);
  } catch (e) {
    throw new Error(`${formatS3Uri(from)}: listing failed: ${(e as Error).name}: ${(e as Error).message}`);
  }
  const files = new Map<string, RemoteFile>();
  for (const o of objects) {
    if (o.name === '' || o.name.endsWith('/')) continue;
    checkName(from, o.name);
    files.set(o.name, o);
  }
  return files;
}

/** A key becomes a local path: nothing that climbs out of the directory or collides with this file's bookkeeping. */
function checkName(from: S3Location, name: string): void {
  const parts = name.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..') || name === RECORD || /\.partial(\.json)?$/.test(name)) {
    throw new Error(`${formatS3Uri(from, name)}: a key this download cannot store as a file`);
  }
}

function readRecord(dir: string): DownloadRecord {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, RECORD), 'utf8')) as DownloadRecord;
  } catch {
    return {}; // none yet, or cut short by a crash: everything is checked again
  }
}

/** Downloaded and checked before, from the object S3 lists now, and still in place. */
function isRecorded(record: DownloadRecord, file: RemoteFile, target: string): boolean {
  const r = record[file.name];
  return r !== undefined && r.etag === file.etag && r.size === file.size && r.sha256 === file.sha256 && sizeOf(target) === file.size;
}

function sizeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch {
    return undefined;
  }
}

function removeStale(dir: string, keep: Set<string>): void {
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const name = path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
    const base = name.replace(/\.partial(\.json)?$/, '');
    if (name !== RECORD && !keep.has(base)) fs.rmSync(path.join(dir, name));
  }
}

/** The file downloaded into `<target>.partial` and checked, once more when the check fails, then renamed into place. */
async function fetchChecked(ctx: FetchContext, file: RemoteFile, target: string): Promise<void> {
  const partial = `${target}.partial`;
  for (let attempt = 1; ; attempt++) {
    try {
      await fetchParts(ctx, file, partial);
    } catch (e) {
      const message = (e as Error).message;
      // the parts already on disk stay listed: the next call fetches only the rest
      throw message.startsWith('s3://') ? e : new Error(`${formatS3Uri(ctx.from, file.name)}: download failed: ${(e as Error).name}: ${message}`);
    }
    const problem = await contentProblem(partial, file);
    if (!problem) break;
    fs.rmSync(partial, { force: true });
    fs.rmSync(`${partial}.json`, { force: true });
    if (attempt === 2) throw new Error(`${formatS3Uri(ctx.from, file.name)}: ${problem} (downloaded twice; removed)`);
  }
  fs.renameSync(partial, target);
  fs.rmSync(`${partial}.json`, { force: true });
}

/** What is wrong with a downloaded file, or undefined. */
async function contentProblem(file: string, remote: RemoteFile): Promise<string | undefined> {
  const size = fs.statSync(file).size;
  if (size !== remote.size) return `${size} bytes, S3 lists ${remote.size}`;
  if (remote.sha256) {
    const actual = await hashFile(file, 'sha256');
    return actual === remote.sha256 ? undefined : `sha256 ${actual}, ${MANIFEST} says ${remote.sha256}`;
  }
  const md5 = plainMd5(remote.etag);
  if (md5) {
    const actual = await hashFile(file, 'md5');
    return actual === md5 ? undefined : `MD5 ${actual}, the ETag says ${md5}`;
  }
  return undefined; // a multipart ETag hashes the parts, whose sizes the listing does not give
}

/** The MD5 an ETag stands for: single-part uploads without SSE-KMS; multipart ETags end in "-<parts>". */
function plainMd5(etag: string): string | undefined {
  const bare = etag.replace(/"/g, '');
  return /^[0-9a-f]{32}$/.test(bare) ? bare : undefined;
}

async function hashFile(file: string, algorithm: 'sha256' | 'md5'): Promise<string> {
  const hash = crypto.createHash(algorithm);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What `<file>.partial.json` keeps: which parts of which object version are already in `<file>.partial`. */
interface PartsState {
  etag: string;
  size: number;
  partBytes: number;
  done: number[];
}

/** Fills `partial` with the parts it lacks, a few ranged GETs at a time, each written at its offset. */
async function fetchParts(ctx: FetchContext, file: RemoteFile, partial: string): Promise<void> {
  const stateFile = `${partial}.json`;
  const partCount = Math.ceil(file.size / ctx.partBytes);
  let state = readPartsState(stateFile);
  if (!state || state.etag !== file.etag || state.size !== file.size || state.partBytes !== ctx.partBytes || sizeOf(partial) !== file.size) {
    state = { etag: file.etag, size: file.size, partBytes: ctx.partBytes, done: [] };
    fs.writeFileSync(partial, '');
    fs.truncateSync(partial, file.size);
    fs.writeFileSync(stateFile, JSON.stringify(state));
  }
  const done = new Set(state.done);
  const partLength = (i: number) => Math.min(file.size, (i + 1) * ctx.partBytes) - i * ctx.partBytes;
  let received = state.done.reduce((n, i) => n + partLength(i), 0);
  const pending = Array.from({ length: partCount }, (_, i) => i).filter((i) => !done.has(i));
  const fd = await fs.promises.open(partial, 'r+');
  try {
    await eachLimited(pending, ctx.concurrency, async (i) => {
      const start = i * ctx.partBytes;
      const end = start + partLength(i); // exclusive
      // If-Match: a part of a replaced object fails instead of mixing two versions in one file
      const out = await ctx.s3.send(new GetObjectCommand({ Bucket: ctx.from.bucket, Key: file.key, Range: `bytes=${start}-${end - 1}`, IfMatch: file.etag || undefined }));
      let at = start;
      for await (const chunk of out.Body as Readable) {
        const bytes = chunk as Buffer;
        if (at + bytes.length > end) throw new Error(`${formatS3Uri(ctx.from, file.name)}: S3 sent more than bytes ${start}-${end - 1}`);
        await fd.write(bytes, 0, bytes.length, at);
        at += bytes.length;
        received += bytes.length;
        ctx.onProgress?.(file.name, received, file.size);
      }
      if (at !== end) throw new Error(`${formatS3Uri(ctx.from, file.name)}: bytes ${start}-${end - 1} ended after ${at - start} bytes`);
      // on disk before the part is marked done, so a crash never leaves a marked part unwritten
      await fd.datasync();
      state.done.push(i);
      fs.writeFileSync(stateFile, JSON.stringify(state));
    });
  } finally {
    await fd.close();
  }
}

function readPartsState(file: string): PartsState | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as PartsState;
  } catch {
    return undefined;
  }
}

/** A small object (manifest.json) in memory, checked by size and a plain-MD5 ETag, fetched once more when it fails. */
async function fetchSmall(ctx: FetchContext, file: RemoteFile): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const out = await ctx.s3.send(new GetObjectCommand({ Bucket: ctx.from.bucket, Key: file.key, IfMatch: file.etag || undefined }));
    const body = Buffer.from(await out.Body!.transformToByteArray());
    const md5 = plainMd5(file.etag);
    const actual = crypto.createHash('md5').update(body).digest('hex');
    const problem = body.length !== file.size ? `${body.length} bytes, S3 lists ${file.size}` : md5 && actual !== md5 ? `MD5 ${actual}, the ETag says ${md5}` : undefined;
    if (!problem) return body.toString('utf8');
    if (attempt === 2) throw new Error(`${formatS3Uri(ctx.from, file.name)}: ${problem} (downloaded twice)`);
  }
}

/** `work` on every item, at most `limit` at once; after a failure no new item starts, and it rejects once the running ones settle. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, lane));
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}
