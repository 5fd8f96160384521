import fs from 'node:fs';
import path from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { formatS3Uri, type S3Location } from '../../contract/s3-uri.ts';
import { MANIFEST, readManifest } from './manifest.ts';
import { listObjects } from './s3-listing.ts';

/**
 * A bundle directory uploaded under `s3://bucket/prefix/` with @aws-sdk/lib-storage (multipart above
 * one part, a few parts in flight; memory is queueSize × partBytes). manifest.json goes last, after a
 * listing shows every file it names in place with its size, so a reader that finds the manifest
 * finds the whole bundle. A prefix that already holds a manifest.json is refused: replacing a bundle
 * in place would mix two bundles under one manifest while it runs.
 */
export interface S3UploadOptions {
  s3: S3Client;
  dir: string;
  to: S3Location;
  /** Bytes per part (default 16 MiB; S3's minimum is 5 MiB). */
  partBytes?: number;
  /** Parts in flight at once (default 4). */
  queueSize?: number;
  /** Called as bytes leave: (file, bytes so far, file size). */
  onProgress?: (file: string, done: number, size: number) => void;
}

export async function uploadBundle(opts: S3UploadOptions): Promise<void> {
  const manifest = readManifest(opts.dir);
  await assertNoBundleAt(opts.s3, opts.to);
  for (const name of Object.keys(manifest.files)) await uploadFile(opts, name);
  const listed = new Map((await listObjects(opts.s3, opts.to)).map((o) => [o.name, o.size]));
  for (const [name, { bytes }] of Object.entries(manifest.files)) {
    if (listed.get(name) !== bytes) throw new Error(`${formatS3Uri(opts.to, name)}: ${listed.get(name) ?? 'no'} bytes after the upload, ${MANIFEST} says ${bytes}; ${MANIFEST} not uploaded`);
  }
  await uploadFile(opts, MANIFEST);
}

/** Throws when `to` already holds a bundle (checked before a long conversion, and again before an upload). */
export async function assertNoBundleAt(s3: S3Client, to: S3Location): Promise<void> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: to.bucket, Key: to.prefix + MANIFEST }));
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return;
    throw new Error(`${formatS3Uri(to)}: cannot check for an existing bundle: ${(e as Error).name}: ${(e as Error).message}`);
  }
  throw new Error(`${formatS3Uri(to)} already holds a bundle (${MANIFEST}); refusing to overwrite it`);
}

async function uploadFile(opts: S3UploadOptions, name: string): Promise<void> {
  const file = path.join(opts.dir, name);
  const size = fs.statSync(file).size;
  const upload = new Upload({
    client: opts.s3,
    params: { Bucket: opts.to.bucket, Key: opts.to.prefix + name, Body: fs.createReadStream(file), ContentLength: size },
    partSize: opts.partBytes ?? 16 << 20,
    queueSize: opts.queueSize ?? 4,
  });
  upload.on('httpUploadProgress', (p) => opts.onProgress?.(name, p.loaded ?? 0, size));
  try {
    await upload.done();
  } catch (e) {
    throw new Error(`${formatS3Uri(opts.to, name)}: upload failed: ${(e as Error).name}: ${(e as Error).message}`);
  }
}
