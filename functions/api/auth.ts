import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError, errorResponse } from './errors.ts';

/**
 * API keys as Bearer tokens. A request's owner is derived from its key (a hash: keys are never
 * stored), and every prediction and upload is filed under its owner, so a key sees only its own.
 * With no keys configured (local runs) every request is the owner "local".
 */
export type AuthEnv = { Variables: { owner: string } };

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
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!m) return errorResponse(c, new ApiError(401, 'unauthorized', 'missing API key: send Authorization: Bearer <key>'));
    if (!matchKey(m[1], keyDigests)) return errorResponse(c, new ApiError(401, 'unauthorized', 'invalid API key'));
    c.set('owner', ownerOf(m[1]));
    return next();
  };
}
