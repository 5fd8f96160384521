import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { HealthSchema } from './schemas.ts';

/** GET /healthz: the function is up (no key needed; it reveals nothing and touches no dependency). */
const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  operationId: 'health',
  summary: 'Liveness',
  security: [],
  responses: { 200: { description: 'up', content: { 'application/json': { schema: HealthSchema } } } },
});

export function healthRoutes(app: OpenAPIHono): void {
  app.openapi(healthRoute, (c) => c.json({ status: 'ok' as const }, 200));
}
