import type { OpenAPIHono } from '@hono/zod-openapi';

/**
 * GET /openapi.json: generated from the routes' zod schemas, the same objects that validate the
 * requests, so there is no hand-kept copy to drift. Register it after every route.
 */
export function openApiRoute(app: OpenAPIHono): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'an API key (ANOLE_API_KEYS); off when the server has none configured',
  });
  app.doc31('/openapi.json', (c) => ({
    openapi: '3.1.0',
    info: {
      title: 'Anole Serve',
      version: '1',
      description:
        'Text, images and interleaved text+image generation with Anole. Predictions follow Replicate (its npm client works with only the base URL changed); ' +
        '/v1/images/generations, /v1/chat/completions and /v1/models follow OpenAI (likewise its client). Errors carry OpenAI\'s `type` beside `code`.',
      // no license has been chosen for this service yet: none is granted (npm's UNLICENSED); the model weights keep their own
      license: { name: 'UNLICENSED', url: 'https://docs.npmjs.com/cli/configuring-npm/package-json#license' },
    },
    servers: [{ url: new URL(c.req.url).origin }],
    security: [{ bearer: [] }],
  }));
}
