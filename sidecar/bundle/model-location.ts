import path from 'node:path';
import { downloadHubRepo, isHubRepoId } from './hub-download.ts';

/**
 * Where a model location points on disk: a directory as it is, or a Hugging Face Hub repo id
 * (`owner/name`, optionally `@revision`) downloaded first into $ANOLE_HUB_CACHE (default
 * .cache/hub) from $HF_ENDPOINT (default the Hub) with $HF_TOKEN; a later call reuses the cache.
 */
export async function resolveModelLocation(location: string, onProgress?: (file: string, done: number, size: number) => void): Promise<string> {
  const [repo, revision] = location.split('@');
  if (!isHubRepoId(repo)) return location;
  try {
    return await downloadHubRepo({
      repo,
      revision,
      cacheDir: process.env.ANOLE_HUB_CACHE || path.resolve('.cache/hub'),
      hubUrl: process.env.HF_ENDPOINT || undefined,
      onProgress,
    });
  } catch (e) {
    // a mistyped relative directory looks like a repo id too: say both readings
    throw new Error(`${location} is no directory here, and downloading it as a Hub repo id failed: ${(e as Error).message}`);
  }
}
