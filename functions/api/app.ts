import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { authenticate, type AuthEnv } from './auth.ts';
import { withDefaults, type ApiDeps } from './deps.ts';
import { ApiError, errorResponse, fromZodError, onError } from './errors.ts';
import { healthRoutes } from './health.ts';
import { notFoundOrNotAllowed } from './method-not-allowed.ts';
import { modelRoutes } from './models.ts';
import { openAiRoutes } from './openai.ts';
import { openApiRoute } from './openapi.ts';
import { playgroundRoute } from './playground.ts';
import { predictionRoutes } from './predictions.ts';
import { uploadRoutes } from './uploads.ts';

/**
 * The HTTP API as a Hono app built from injected dependencies: on Lambda (functions/lambda.ts),
 * locally on @hono/node-server, in tests through app.request() or a real port.
 *
 *   every request   body ≤ maxBodyBytes (413), errors as {error: {code, message, param}}
 *   /v1/*           Bearer key → owner (401), then the routes; schemas reject unknown fields
 *   /healthz, /openapi.json, / (the playground page)   open
 */
export function createApp(deps: ApiDeps): OpenAPIHono<AuthEnv> {
  const ctx = withDefaults(deps);
  const app = new OpenAPIHono<AuthEnv>({
    defaultHook: async (result, c) => {
      if (result.success) return;
      if (result.target === 'param') {
        const id = c.req.param('id');
        return errorResponse(c, id !== undefined ? new ApiError(404, 'not_found', `no prediction ${id}`, 'id') : new ApiError(404, 'not_found', `no route GET ${c.req.path}`));
      }
      const data = result.target === 'json' ? await c.req.json().catch(() => undefined) : result.target === 'query' ? c.req.query() : undefined;
      return errorResponse(c, fromZodError(result.error, data));
    },
  });
  app.use(
    '*',
    bodyLimit({
      maxSize: ctx.limits.maxBodyBytes,
      onError: (c) =>
        errorResponse(c, new ApiError(413, 'payload_too_large', `the body is over ${ctx.limits.maxBodyBytes} bytes; send large images through POST /v1/uploads`)),
    }),
  );
  app.use('/v1/*', authenticate(ctx.apiKeys));
  healthRoutes(app as unknown as OpenAPIHono);
  predictionRoutes(app, ctx);
  uploadRoutes(app, ctx);
  openAiRoutes(app, ctx);
  modelRoutes(app, ctx);
  openApiRoute(app as unknown as OpenAPIHono);
  playgroundRoute(app, ctx);
  app.onError(onError);
  const notFound = notFoundOrNotAllowed(app.routes); // after every route is registered
  app.notFound((c) => notFound(c));
  return app;
}
