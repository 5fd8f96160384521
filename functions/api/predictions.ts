import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { TERMINAL, type PredictionEvent, type PredictionRecord, type StreamedEvent } from '../../contract/prediction.ts';
import { InvalidCursorError } from '../../contract/prediction-store.ts';
import { abortAfter } from './abort-after.ts';
import type { AuthEnv } from './auth.ts';
import { createPrediction, DEFAULT_WEBHOOK_EVENTS, parseCancelAfter } from './create-prediction.ts';
import type { ApiContext } from './deps.ts';
import { ApiError } from './errors.ts';
import { requestCancel } from './cancel-prediction.ts';
import { endIfOrphaned, settlingReads } from './end-orphaned.ts';
import { EventWatchers } from './event-watchers.ts';
import { waitForTerminal } from './follow-prediction.ts';
import { checkIdempotencyKey, fingerprint, idempotent, type NoteProgress, type StoredResponse } from './idempotency.ts';
import { checkModel, ModelParamsSchema, servedModel } from './models.ts';
import { renderPrediction, type ViewContext } from './prediction-view.ts';
import { replicateEvent } from './replicate-stream.ts';
import { streamToken } from './stream-token.ts';
import {
  CreateModelPredictionSchema,
  CreatePredictionSchema,
  ErrorSchema,
  IdParamSchema,
  ListQuerySchema,
  PredictionListSchema,
  PredictionSchema,
  StreamEventSchema,
  StreamQuerySchema,
  type CreatePredictionBody,
} from './schemas.ts';

/**
 * Replicate-style predictions: create (async, or Prefer: wait=N), get, list, cancel, stream (SSE).
 * Every read is scoped to the caller's owner: another key's prediction is simply not found.
 */
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, { description: 'error', content: { 'application/json': { schema: ErrorSchema } } }]));

const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

const createHeaders = z.object({
  'idempotency-key': z.string().optional().openapi({ description: 'a retry with the same key returns the first response' }),
  prefer: z.string().optional().openapi({ description: 'wait=N: answer when done within N seconds (at most 60), else 202', example: 'wait=30' }),
  'cancel-after': z.string().optional().openapi({ description: 'deadline, e.g. 90s, 5m: aborted if not started by then, canceled if running', example: '5m' }),
});
const createResponses = {
  201: json(PredictionSchema, 'created (with output when it finished within Prefer: wait)'),
  202: json(PredictionSchema, 'Prefer: wait ran out before it finished: poll urls.get'),
  ...errors(400, 401, 409, 413, 415, 422),
};

const createPredictionRoute = createRoute({
  method: 'post',
  path: '/v1/predictions',
  operationId: 'createPrediction',
  summary: 'Create a prediction',
  request: { headers: createHeaders, body: { content: { 'application/json': { schema: CreatePredictionSchema } }, required: true } },
  responses: createResponses,
});

// Replicate's routes that name the model (its client's run(), predictions.create({model}) and deployments)
const createModelPredictionRoute = createRoute({
  method: 'post',
  path: '/v1/models/{owner}/{name}/predictions',
  operationId: 'createModelPrediction',
  summary: "Create a prediction of the served model (Replicate's models route; another model is 404)",
  request: { params: ModelParamsSchema, headers: createHeaders, body: { content: { 'application/json': { schema: CreateModelPredictionSchema } }, required: true } },
  responses: { ...createResponses, ...errors(404) },
});

const createDeploymentPredictionRoute = createRoute({
  method: 'post',
  path: '/v1/deployments/{owner}/{name}/predictions',
  operationId: 'createDeploymentPrediction',
  summary: "Create a prediction through Replicate's deployments route: the one deployment is the served model, named as it is",
  request: { params: ModelParamsSchema, headers: createHeaders, body: { content: { 'application/json': { schema: CreateModelPredictionSchema } }, required: true } },
  responses: { ...createResponses, ...errors(404) },
});

const getPredictionRoute = createRoute({
  method: 'get',
  path: '/v1/predictions/{id}',
  operationId: 'getPrediction',
  summary: 'Get a prediction',
  request: { params: IdParamSchema },
  responses: { 200: json(PredictionSchema, 'the prediction'), ...errors(401, 404) },
});

const listPredictionsRoute = createRoute({
  method: 'get',
  path: '/v1/predictions',
  operationId: 'listPredictions',
  summary: "The caller's predictions, newest first",
  request: { query: ListQuerySchema },
  responses: { 200: json(PredictionListSchema, 'a page'), ...errors(400, 401, 422) },
});

const cancelPredictionRoute = createRoute({
  method: 'post',
  path: '/v1/predictions/{id}/cancel',
  operationId: 'cancelPrediction',
  summary: 'Cancel a prediction (idempotent; a finished one is returned as it is)',
  request: { params: IdParamSchema },
  responses: { 200: json(PredictionSchema, 'the prediction'), ...errors(401, 404) },
});

const streamPredictionRoute = createRoute({
  method: 'get',
  path: '/v1/predictions/{id}/stream',
  operationId: 'streamPrediction',
  summary: "Server-sent events: this service's own (status, text, image_rows, image, error, done; JSON data), or with protocol=replicate Replicate's (output, logs, error, done)",
  request: {
    params: IdParamSchema,
    query: StreamQuerySchema,
    headers: z.object({ 'last-event-id': z.string().regex(/^\d+$/).optional().openapi({ description: 'resume after this event' }) }),
  },
  responses: {
    200: {
      description:
        'an event stream; each event has an id (its place in the log). Its own protocol: a JSON data line per event (StreamEvent). ' +
        'protocol=replicate: output (raw text, or an image URL), logs (status and image progress lines), error ({"detail"}), done ({} or {"reason"})',
      content: { 'text/event-stream': { schema: StreamEventSchema } },
    },
    ...errors(401, 404),
  },
});

/** After its wait, what a request still needs to render and store its answer: a held Idempotency-Key outlives the wait by this. */
const IDEMPOTENT_ANSWER_MARGIN_S = 5;

export function predictionRoutes(app: OpenAPIHono<AuthEnv>, ctx: ApiContext): void {
  // all streams of one prediction share one poller
  const watchers = new EventWatchers(settlingReads(ctx), { pollMs: ctx.limits.pollMs });
  app.openapi(createPredictionRoute, async (c) => create(c, c.req.valid('json')));
  const model = servedModel(ctx);
  app.openapi(createModelPredictionRoute, async (c) => {
    const { owner, name } = c.req.valid('param');
    checkModel(model, owner, name);
    return create(c, c.req.valid('json'));
  });
  app.openapi(createDeploymentPredictionRoute, async (c) => {
    const { owner, name } = c.req.valid('param');
    checkModel(model, owner, name, 'deployment');
    return create(c, c.req.valid('json'));
  });

  /** Every create route: Prefer: wait, Cancel-After, Idempotency-Key (keyed by the route's path). */
  async function create(c: Context<AuthEnv>, body: CreatePredictionBody) {
    const owner = c.get('owner');
    const key = c.req.header('idempotency-key');
    const cancelAfter = c.req.header('cancel-after');
    const wait = parsePreferWait(c.req.header('prefer'), ctx.limits.maxWaitSeconds);
    const deadline = cancelAfter !== undefined ? parseCancelAfter(cancelAfter, ctx.now(), ctx.limits.maxCancelAfterSeconds) : null;

    // a prediction as this request answers it: waited for (Prefer: wait), 201 when done, else 202
    const answer = async (record: PredictionRecord): Promise<StoredResponse> => {
      const current = wait === null ? record : await waitForTerminal(settlingReads(ctx), record.id, { timeoutMs: wait * 1000, pollMs: ctx.limits.pollMs, signal: AbortSignal.any([c.req.raw.signal, ctx.shutdown]) });
      const view = await renderPrediction(current, viewContext(c, ctx));
      return {
        status: wait !== null && !TERMINAL.has(current.status) ? 202 : 201,
        body: view,
        headers: { Location: view.urls.get, ...(wait !== null ? { 'Preference-Applied': `wait=${wait}` } : {}) },
      };
    };
    const run = async (note?: NoteProgress): Promise<StoredResponse> => {
      const { record } = await createPrediction(ctx, owner, predictionRequest(body, deadline));
      await note?.(record.id, ((wait ?? 0) + IDEMPOTENT_ANSWER_MARGIN_S) * 1000); // from now on a retry after a crash finds it
      return answer(record);
    };
    const resume = async (predictionId: string): Promise<StoredResponse> => answer(await ownPrediction(ctx, predictionId, owner));

    let response: StoredResponse & { replayed: boolean };
    if (key === undefined) response = { ...(await run()), replayed: false };
    else {
      checkIdempotencyKey(key);
      const print = fingerprint('POST', c.req.path, body, { 'cancel-after': cancelAfter });
      response = await idempotent(ctx.store, { owner, key, fingerprint: print, ttlMs: ctx.limits.idempotencyTtlMs, leaseMs: ctx.limits.idempotencyLeaseMs, now: ctx.now }, run, resume);
    }
    const headers = { ...response.headers, ...(response.replayed ? { 'Idempotent-Replayed': 'true' } : {}) };
    return c.json(response.body as z.infer<typeof PredictionSchema>, response.status as 201 | 202, headers);
  }

  app.openapi(getPredictionRoute, async (c) => {
    const record = await ownPrediction(ctx, c.req.valid('param').id, c.get('owner'));
    return c.json(await renderPrediction(record, viewContext(c, ctx)), 200);
  });

  app.openapi(listPredictionsRoute, async (c) => {
    const { cursor, limit } = c.req.valid('query');
    let page;
    try {
      page = await ctx.predictions.listByOwner(c.get('owner'), { cursor, limit: limit ?? 20 });
    } catch (e) {
      if (e instanceof InvalidCursorError) throw new ApiError(422, 'invalid_value', 'cursor is not one this API gave you', 'cursor');
      throw e;
    }
    const view = viewContext(c, ctx);
    const next = page.nextCursor ? `${view.origin}/v1/predictions?${new URLSearchParams({ cursor: page.nextCursor, ...(limit ? { limit: String(limit) } : {}) })}` : null;
    return c.json({ results: await Promise.all(page.predictions.map((r) => renderPrediction(r, view))), next }, 200);
  });

  app.openapi(cancelPredictionRoute, async (c) => {
    const { id } = c.req.valid('param');
    await ownPrediction(ctx, id, c.get('owner'));
    const value = await requestCancel(ctx, id);
    return c.json(await renderPrediction(value, viewContext(c, ctx)), 200);
  });

  app.openapi(streamPredictionRoute, async (c) => {
    const { id } = c.req.valid('param');
    const record = await ownPrediction(ctx, id, c.get('owner'));
    const lastEventId = c.req.valid('header')['last-event-id'];
    const replicate = c.req.valid('query').protocol === 'replicate';
    const view = viewContext(c, ctx);
    return streamSSE(c, async (stream) => {
      const keepAlive = setInterval(() => void stream.write(': keep-alive\n\n').catch(() => undefined), 15_000);
      const aborted = new AbortController();
      stream.onAbort(() => aborted.abort());
      const deadline = abortAfter(ctx.limits.maxStreamSeconds * 1000, AbortSignal.any([aborted.signal, ctx.shutdown]));
      try {
        if (!replicate) await stream.writeSSE({ event: 'status', data: JSON.stringify({ status: record.status }) });
        const events = watchers.follow(id, { afterSeq: lastEventId ? Number(lastEventId) : -1, signal: deadline.signal });
        for await (const { seq, event } of events) {
          const rendered = await renderEvent(event, view);
          const sse = replicate ? replicateEvent(rendered) : { event: rendered.type, data: JSON.stringify({ ...rendered, type: undefined }) };
          if (sse) await stream.writeSSE({ ...sse, ...(seq !== null ? { id: String(seq) } : {}) });
        }
        if (ctx.shutdown.aborted && !aborted.signal.aborted) {
          // the client resumes with Last-Event-ID on another server (or this one restarted), or polls
          await stream.writeSSE({
            event: 'reconnect',
            data: JSON.stringify({ reason: 'the server is shutting down: reconnect with Last-Event-ID, or poll', poll: `${view.origin}/v1/predictions/${id}` }),
            retry: 1000,
          });
        }
      } finally {
        deadline.clear();
        clearInterval(keepAlive);
      }
    });
  });
}

/** The caller's prediction; someone else's is as absent as a missing one. */
export async function ownPrediction(ctx: ApiContext, id: string, owner: string): Promise<PredictionRecord> {
  const found = await ctx.predictions.get(id);
  if (!found || found.value.owner !== owner) throw new ApiError(404, 'not_found', `no prediction ${id}`, 'id');
  return (await endIfOrphaned(ctx, found)).value;
}

export function viewContext(c: Context<AuthEnv>, ctx: ApiContext): ViewContext {
  const key = c.get('apiKey');
  return {
    presignGet: (k, s) => ctx.store.presignGet(k, s),
    origin: new URL(c.req.url).origin,
    urlExpirySeconds: ctx.limits.outputUrlSeconds,
    ...(key !== undefined ? { streamToken: (id: string) => streamToken(key, id) } : {}),
  };
}

/** Prefer: wait / wait=N (RFC 7240, Replicate): seconds to wait, capped; null when not asked. */
export function parsePreferWait(prefer: string | undefined, maxSeconds: number): number | null {
  const m = /(?:^|[\s,;])wait(?:\s*=\s*"?(\d+)"?)?(?=$|[\s,;])/i.exec(prefer ?? '');
  if (!m) return null;
  const n = m[1] === undefined ? maxSeconds : Number(m[1]);
  return n > 0 ? Math.min(n, maxSeconds) : null;
}

function predictionRequest(body: CreatePredictionBody, deadline: string | null) {
  const { input } = body;
  const s = input.sampling;
  return {
    input: {
      prompt: input.prompt,
      mode: input.mode,
      maxNewTokens: input.max_new_tokens,
      n: input.n,
      sampling: s && {
        temperature: s.temperature,
        topP: s.top_p,
        topK: s.top_k,
        seed: s.seed,
        repetitionPenalty: s.repetition_penalty,
        presencePenalty: s.presence_penalty,
        frequencyPenalty: s.frequency_penalty,
      },
      stop: input.stop,
      guidance: input.guidance,
      logitBias: input.logit_bias,
    },
    images: input.images ?? [],
    shownInput: input as Record<string, unknown>, // a Replicate client's version is not part of the input
    webhook: body.webhook ?? null,
    webhookEventsFilter: body.webhook_events_filter ?? DEFAULT_WEBHOOK_EVENTS,
    deadline,
    param: (name: string) => `input.${name}`,
  };
}

/** Log events carry blob keys; the stream sends presigned URLs instead. */
async function renderEvent(event: PredictionEvent, view: ViewContext): Promise<StreamedEvent> {
  if (event.type === 'image') {
    const { key, ...rest } = event;
    const { url, expiresAt } = await view.presignGet(key, view.urlExpirySeconds);
    return { ...rest, url, expires_at: expiresAt };
  }
  if (event.type === 'image_rows' && event.preview_key) {
    const { preview_key, ...rest } = event;
    const { url, expiresAt } = await view.presignGet(preview_key, view.urlExpirySeconds);
    return { ...rest, preview_url: url, expires_at: expiresAt };
  }
  return event;
}
