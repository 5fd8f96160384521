import { createHmac, timingSafeEqual } from 'node:crypto';
import { ownerOf } from './auth.ts';

/**
 * A prediction's stream URL carries its own credential: Replicate's client (and an EventSource)
 * fetches `urls.stream` without the Authorization header, as Replicate's stream URLs need none.
 * The token is an HMAC of the prediction id under the API key that owns it, so it opens that one
 * stream only, cannot be made without the key, and dies with the key. With keys off there is none.
 */
export function streamToken(key: string, predictionId: string): string {
  return createHmac('sha256', key).update(`stream:${predictionId}`).digest('base64url');
}

/** The owner whose key made `token` for this prediction, or null. Every key is tried, in constant time each. */
export function ownerOfStreamToken(keys: readonly string[], predictionId: string, token: string): string | null {
  const presented = Buffer.from(token);
  let owner: string | null = null;
  for (const key of keys) {
    const expected = Buffer.from(streamToken(key, predictionId));
    if (expected.length === presented.length && timingSafeEqual(expected, presented)) owner = ownerOf(key);
  }
  return owner;
}
