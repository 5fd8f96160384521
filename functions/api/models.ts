import { createHash } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AuthEnv } from './auth.ts';
import type { ApiContext } from './deps.ts';
import { ApiError } from './errors.ts';
import { ErrorSchema, ModelListSchema, ModelSchema } from './schemas.ts';

/**
 * The one served model, described for both families of clients: GET /v1/models is OpenAI's list
 * (`data`, which many chat UIs call first) and Replicate's (`results`) in one body, and
 * GET /v1/models/{owner}/{name} is Replicate's model (OpenAI's retrieve of the id `owner/name`
 * reaches the same path and finds its `id` and `object` there too).
 */
export interface ServedModel {
  owner: string;
  name: string;
  id: string;
  /** A stable id for Replicate's `version`: the model's name and config hashed. */
  version: string;
}

export function servedModel(ctx: ApiContext): ServedModel {
  const m = /^([a-z0-9][a-z0-9._-]*)\/([a-z0-9][a-z0-9._-]*)$/i.exec(ctx.modelId);
  if (!m) throw new Error(`ANOLE_MODEL_ID / modelId must be owner/name (letters, digits, . _ -), got "${ctx.modelId}"`);
  const version = createHash('sha256').update(ctx.modelId).update(JSON.stringify(ctx.config)).digest('hex');
  return { owner: m[1], name: m[2], id: ctx.modelId, version };
}

/** 404 unless `owner/name` is the served model (Replicate's routes name it). */
export function checkModel(model: ServedModel, owner: string, name: string, what = 'model'): void {
  if (`${owner}/${name}`.toLowerCase() !== model.id.toLowerCase()) {
    throw new ApiError(404, 'not_found', `no ${what} ${owner}/${name}: this server runs ${model.id}`, what);
  }
}

const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, { description: 'error', content: { 'application/json': { schema: ErrorSchema } } }]));

export const ModelParamsSchema = z.object({
  owner: z.string().max(100).openapi({ param: { name: 'owner', in: 'path' } }),
  name: z.string().max(100).openapi({ param: { name: 'name', in: 'path' } }),
});

const listModelsRoute = createRoute({
  method: 'get',
  path: '/v1/models',
  operationId: 'listModels',
  summary: "The served model: OpenAI's model list (data) and Replicate's (results)",
  responses: { 200: { description: 'one model', content: { 'application/json': { schema: ModelListSchema } } }, ...errors(401) },
});

const getModelRoute = createRoute({
  method: 'get',
  path: '/v1/models/{owner}/{name}',
  operationId: 'getModel',
  summary: "The served model as Replicate describes a model (with OpenAI's id and object)",
  request: { params: ModelParamsSchema },
  responses: { 200: { description: 'the model', content: { 'application/json': { schema: ModelSchema } } }, ...errors(401, 404) },
});

export function modelRoutes(app: OpenAPIHono<AuthEnv>, ctx: ApiContext): void {
  const model = servedModel(ctx);
  const created = Math.floor(Date.now() / 1000); // when this server started serving it
  const describe = (c: Context) => {
    const origin = new URL(c.req.url).origin;
    return {
      id: model.id,
      object: 'model' as const,
      created,
      owned_by: model.owner,
      url: `${origin}/v1/models/${model.id}`,
      owner: model.owner,
      name: model.name,
      description: 'Anole (Chameleon-7B with image generation): text, images and interleaved text and images',
      visibility: 'public' as const,
      github_url: null,
      paper_url: 'https://arxiv.org/abs/2407.06135',
      license_url: null,
      run_count: 0,
      cover_image_url: null,
      default_example: null,
      latest_version: { id: model.version, created_at: new Date(created * 1000).toISOString(), cog_version: null, openapi_schema: { openapi: `${origin}/openapi.json` } },
    };
  };
  app.openapi(listModelsRoute, (c) => {
    const m = describe(c);
    return c.json({ object: 'list' as const, data: [{ id: m.id, object: m.object, created: m.created, owned_by: m.owned_by }], results: [m], next: null, previous: null }, 200);
  });
  app.openapi(getModelRoute, (c) => {
    const { owner, name } = c.req.valid('param');
    checkModel(model, owner, name);
    return c.json(describe(c), 200);
  });
}
