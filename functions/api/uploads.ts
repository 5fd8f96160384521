import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { AuthEnv } from './auth.ts';
import { newId } from './create-prediction.ts';
import type { ApiContext } from './deps.ts';
import { uploadKey } from './fetch-image.ts';
import { CreateUploadSchema, ErrorSchema, UploadSchema } from './schemas.ts';

/**
 * POST /v1/uploads: a presigned PUT straight into the bucket, so large images never pass through
 * the function (Lambda takes at most 6 MB per request). The upload is filed under the caller's
 * owner, and only that owner can use its id as an image; the size limit is enforced when it is used.
 */
const createUploadRoute = createRoute({
  method: 'post',
  path: '/v1/uploads',
  operationId: 'createUpload',
  summary: 'A presigned PUT URL for an input image',
  request: { body: { content: { 'application/json': { schema: CreateUploadSchema } }, required: true } },
  responses: {
    201: { description: 'PUT the file to url with headers before expires_at, then use upload_id as an image', content: { 'application/json': { schema: UploadSchema } } },
    ...Object.fromEntries([400, 401, 415, 422].map((s) => [s, { description: 'error', content: { 'application/json': { schema: ErrorSchema } } }])),
  },
});

export function uploadRoutes(app: OpenAPIHono<AuthEnv>, ctx: ApiContext): void {
  app.openapi(createUploadRoute, async (c) => {
    const { content_type } = c.req.valid('json');
    const uploadId = newId('up_');
    const { url, expiresAt } = await ctx.store.presignPut(uploadKey(c.get('owner'), uploadId), {
      contentType: content_type,
      expiresInSeconds: ctx.limits.uploadUrlSeconds,
    });
    return c.json(
      { upload_id: uploadId, url, method: 'PUT' as const, headers: { 'Content-Type': content_type }, expires_at: expiresAt, max_bytes: ctx.limits.image.maxBytes },
      201,
    );
  });
}
