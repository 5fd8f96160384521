import fs from 'node:fs';
import path from 'node:path';
import { s3SettingsFromEnv } from '../../contract/s3-settings.ts';
import { isS3Uri, parseS3Uri } from '../../contract/s3-uri.ts';
import { cacheLockOptionsFromEnv, withCacheLock } from './cache-lock.ts';

export type DownloadProgress = (file: string, done: number, size: number) => void;

/**
 * Where a model location points on disk: a directory as it is; `s3://bucket/prefix/` (a bundle or a
 * Hugging Face directory) downloaded first into $ANOLE_S3_CACHE (default .cache/s3) with the S3
 * settings of the environment (contract/s3.ts: ANOLE_S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID…);
 * or a Hugging Face Hub repo id (`owner/name`, optionally `@revision`) downloaded first into
 * $ANOLE_HUB_CACHE (default .cache/hub) from $HF_ENDPOINT (default the Hub) with $HF_TOKEN. A later
 * call reuses the cache. Processes resolving the same location at once take turns
 * (cache-lock.ts, $ANOLE_CACHE_LOCK_STALE_SECONDS): one downloads, the others wait and find it done.
 */
export async function resolveModelLocation(location: string, onProgress?: DownloadProgress): Promise<string> {
  if (isS3Uri(location)) return resolveS3Location(location, onProgress);
  // a directory needs nothing more: the downloaders and their SDKs are imported only for a location
  // that needs them (a worker with its model on disk starts loading it sooner)
  if (fs.existsSync(location)) return location;
  const { downloadHubRepo, hubCacheDir, isHubRepoId } = await import('./hub-download.ts');
  const [repo, revision] = location.split('@');
  if (!isHubRepoId(repo)) throw new Error(`${location}: no such directory (nor an s3:// location or a Hub repo id)`);
  const cacheDir = process.env.ANOLE_HUB_CACHE || path.resolve('.cache/hub');
  try {
    return await withCacheLock(
      hubCacheDir(cacheDir, repo, revision),
      () => downloadHubRepo({ repo, revision, cacheDir, hubUrl: process.env.HF_ENDPOINT || undefined, onProgress }),
      cacheLockOptionsFromEnv(location),
    );
  } catch (e) {
    // a mistyped relative directory looks like a repo id too: say both readings
    throw new Error(`${location} is no directory here, and downloading it as a Hub repo id failed: ${(e as Error).message}`);
  }
}

async function resolveS3Location(location: string, onProgress?: DownloadProgress): Promise<string> {
  const from = parseS3Uri(location, 'a model location');
  const [{ createS3Client }, { downloadS3Model, s3CacheDir }] = await Promise.all([import('../../contract/s3.ts'), import('./s3-download.ts')]);
  const cacheDir = process.env.ANOLE_S3_CACHE || path.resolve('.cache/s3');
  const s3 = createS3Client(s3SettingsFromEnv());
  try {
    return await withCacheLock(s3CacheDir(cacheDir, from), () => downloadS3Model({ s3, from, cacheDir, onProgress }), cacheLockOptionsFromEnv(location));
  } finally {
    s3.destroy();
  }
}
