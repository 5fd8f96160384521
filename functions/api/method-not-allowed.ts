import type { Context } from 'hono';
import { ApiError, errorResponse } from './errors.ts';

/**
 * 404 or 405: a path the app serves with other methods is 405 Method Not Allowed with an Allow
 * header (RFC 9110 §15.5.6), e.g. PUT /v1/predictions; only an unknown path is 404.
 */
export function notFoundOrNotAllowed(routes: readonly { method: string; path: string }[]): (c: Context) => Response {
  const patterns = routes
    .filter((r) => r.method !== 'ALL' && !r.path.includes('*'))
    .map((r) => ({ method: r.method, re: new RegExp(`^${r.path.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]\w*/g, '[^/]+')}/?$`) }));
  return (c) => {
    const allowed = [...new Set(patterns.filter((p) => p.re.test(c.req.path)).map((p) => p.method))].sort();
    if (allowed.length === 0 || allowed.includes(c.req.method)) return errorResponse(c, new ApiError(404, 'not_found', `no route ${c.req.method} ${c.req.path}`));
    return errorResponse(c, new ApiError(405, 'method_not_allowed', `${c.req.path} takes ${allowed.join(', ')}, not ${c.req.method}`, null, { Allow: allowed.join(', ') }));
  };
}
