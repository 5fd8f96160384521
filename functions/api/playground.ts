import type { OpenAPIHono } from '@hono/zod-openapi';
import type { PlaygroundConfig } from '../playground/page-config.ts';
import { pageFromParts, readPrebuiltPage, type BuiltPage } from '../playground/prebuilt-page.ts';
import { LIMITS } from '../prepare-job.ts';
import { DEFAULT_SAMPLING } from '../../contract/generation-request.ts';
import { summarizeCheckpoint } from '../../model/checkpoint-summary.ts';
import type { AuthEnv } from './auth.ts';
import type { ApiContext } from './deps.ts';
import { ApiError, errorResponse } from './errors.ts';
import { servedModel } from './models.ts';
import { UPLOAD_CONTENT_TYPES } from './schemas.ts';

/**
 * GET /: the playground page (functions/playground/), open like /healthz (the page asks for the
 * key itself when keys are on). Its CSP allows requests to this origin and to the bucket's (where
 * presigned URLs point; the same origin under `anole serve`), and nothing else. The Lambda bundle
 * carries the page prebuilt (functions/playground/prebuilt-page.ts); elsewhere it is built here.
 */
export function playgroundRoute(app: OpenAPIHono<AuthEnv>, ctx: ApiContext): void {
  let page: Promise<{ html: string; csp: string }> | undefined;
  app.get('/', async (c) => {
    page ??= render(ctx).catch((e) => {
      page = undefined;
      throw e;
    });
    let html: string, csp: string;
    try {
      ({ html, csp } = await page);
    } catch (e) {
      return errorResponse(c, new ApiError(503, 'playground_unavailable', `the playground page could not be built here: ${(e as Error).message}`));
    }
    return c.html(html, 200, {
      'content-security-policy': csp,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
    });
  });
}

async function render(ctx: ApiContext): Promise<{ html: string; csp: string }> {
  const built = await loadPlaygroundPage();
  const checkpoint = summarizeCheckpoint(ctx.config);
  const config: PlaygroundConfig = {
    keysOn: ctx.apiKeys.length > 0,
    imageToken: ctx.processor.config.imageToken,
    defaults: {
      temperature: { text: DEFAULT_SAMPLING.text.temperature, image: DEFAULT_SAMPLING.image.temperature },
      topP: DEFAULT_SAMPLING.text.topP,
      topK: DEFAULT_SAMPLING.text.topK,
      repetitionPenalty: DEFAULT_SAMPLING.repetitionPenalty,
      guidance: { ...DEFAULT_SAMPLING.guidance },
    },
    limits: { maxImages: LIMITS.maxImages, maxImageBytes: ctx.limits.image.maxBytes, maxN: LIMITS.maxN, uploadTypes: UPLOAD_CONTENT_TYPES },
    model: { id: servedModel(ctx).id, layers: checkpoint.layers, imageSize: checkpoint.imageSize, randomShape: checkpoint.randomShape },
  };
  // presigning makes no request: it only tells where the bucket's URLs point
  const bucket = new URL((await ctx.store.presignGet('playground-origin-probe', 60)).url).origin;
  const sources = (...more: string[]) => [...new Set(["'self'", ...more])].join(' ');
  const csp = [
    "default-src 'none'",
    `script-src ${built.scriptHash}`,
    `style-src ${built.styleHash}`,
    `img-src ${sources('blob:', 'data:', bucket)}`,
    `connect-src ${sources(bucket)}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html: built.html(config), csp };
}

/** The prebuilt page beside this module (the Lambda bundle, dist/), else a build from the sources (esbuild). */
export async function loadPlaygroundPage(): Promise<BuiltPage> {
  const prebuilt = await readPrebuiltPage(import.meta.url);
  if (prebuilt) return pageFromParts(prebuilt);
  // loaded only when there is no prebuilt page, through a computed specifier so that bundlers (the
  // Lambda's esbuild) leave esbuild and the page's sources out of the bundle
  const builder = '../playground/build-page.ts';
  const { playgroundPage } = (await import(/* @vite-ignore */ builder)) as typeof import('../playground/build-page.ts');
  return playgroundPage();
}
