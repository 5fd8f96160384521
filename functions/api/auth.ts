import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError, errorResponse } from './errors.ts';
import { ownerOfStreamToken } from './stream-token.ts';

/**
 * API keys as Bearer tokens. A request's owner is derived from its key (a hash: keys are never
 * stored), and every prediction and upload is filed under its owner, so a key sees only its own.
 * With no keys configured (local runs) every request is the owner "local".
 */
export type AuthEnv = { Variables: { owner: string; /** the key presented (absent with keys off, or a stream token) */ apiKey?: string } };

export const LOCAL_OWNER = 'local';

/** ANOLE_API_KEYS: comma-separated keys; unset or empty turns keys off. */
export function apiKeysFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.ANOLE_API_KEYS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
}

const digest = (key: string) => createHash('sha256').update(key).digest();

/** The owner id filed with a key's resources. */
export function ownerOf(key: string): string {
  return `k${digest(key).toString('hex').slice(0, 32)}`;
}

/**
 * Compares the presented key with every configured key, always all of them and always on equal-length
 * digests, so the time taken says nothing about which key (or how much of one) matched.
 */
export function matchKey(presented: string, keyDigests: readonly Buffer[]): boolean {
  const d = digest(presented);
  let match = false;
  for (const k of keyDigests) match = timingSafeEqual(d, k) || match;
  return match;
}

export function authenticate(keys: readonly string[]): MiddlewareHandler<AuthEnv> {
  const keyDigests = keys.map(digest);
  return async (c, next) => {
    if (keys.length === 0) {
      c.set('owner', LOCAL_OWNER);
      return next();
    }
    const authorization = c.req.header('authorization');
    // a stream URL's own token (stream-token.ts) stands in for the key on that stream only
    const stream = /^\/v1\/predictions\/([^/]+)\/stream$/.exec(c.req.path);
    const token = c.req.query('token');
    if (authorization === undefined && stream && token !== undefined) {
      const owner = ownerOfStreamToken(keys, stream[1], token);
      if (!owner) return errorResponse(c, new ApiError(401, 'unauthorized', 'invalid stream token: use the urls.stream of the prediction', 'token'));
      c.set('owner', owner);
      return next();
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) return errorResponse(c, new ApiError(401, 'unauthorized', 'missing API key: send Authorization: Bearer <key>'));
    if (!matchKey(m[1], keyDigests)) return errorResponse(c, new ApiError(401, 'unauthorized', 'invalid API key'));
    c.set('owner', ownerOf(m[1]));
    c.set('apiKey', m[1]);
    return next();
  };
}
