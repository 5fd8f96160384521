import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { TERMINAL, type PredictionRecord } from '../../contract/prediction.ts';
import type { AuthEnv } from './auth.ts';
import { chatPrompt } from './chat-prompt.ts';
import { finishReason, streamChat, usage } from './chat-stream.ts';
import { createPrediction } from './create-prediction.ts';
import type { ApiContext } from './deps.ts';
import { ApiError } from './errors.ts';
import { waitForTerminal } from './follow-prediction.ts';
import { requestCancel } from './cancel-prediction.ts';
import { ChatCompletionChunkSchema, ChatCompletionRequestSchema, ChatCompletionSchema, ErrorSchema, ImageGenerationRequestSchema, ImageGenerationResponseSchema } from './schemas.ts';

/**
 * OpenAI-compatible endpoints, so existing clients work unchanged: both create an ordinary
 * prediction (visible and cancelable under /v1/predictions) and wait for it, since these clients
 * have no asynchronous mode. A client that hangs up cancels the prediction.
 */
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, { description: 'error', content: { 'application/json': { schema: ErrorSchema } } }]));

const imageGenerationRoute = createRoute({
  method: 'post',
  path: '/v1/images/generations',
  operationId: 'createImage',
  summary: 'OpenAI-compatible image generation',
  request: { body: { content: { 'application/json': { schema: ImageGenerationRequestSchema } }, required: true } },
  responses: {
    200: { description: 'the images', content: { 'application/json': { schema: ImageGenerationResponseSchema } } },
    ...errors(400, 401, 413, 415, 422, 500, 504),
  },
});

const chatCompletionRoute = createRoute({
  method: 'post',
  path: '/v1/chat/completions',
  operationId: 'createChatCompletion',
  summary: 'OpenAI-compatible chat completion: text and image_url parts in, text out',
  request: { body: { content: { 'application/json': { schema: ChatCompletionRequestSchema } }, required: true } },
  responses: {
    200: {
      description: 'a completion, or with stream: true chat.completion.chunk events ending in [DONE]',
      content: { 'application/json': { schema: ChatCompletionSchema }, 'text/event-stream': { schema: ChatCompletionChunkSchema } },
    },
    ...errors(400, 401, 413, 415, 422, 500, 504),
  },
});

export function openAiRoutes(app: OpenAPIHono<AuthEnv>, ctx: ApiContext): void {
  app.openapi(imageGenerationRoute, async (c) => {
    const body = c.req.valid('json');
    const { resolution } = ctx.config.vq;
    const size = `${resolution}x${resolution}`;
    if (body.size !== undefined && body.size !== 'auto' && body.size !== size) {
      throw new ApiError(422, 'invalid_value', `size ${body.size} is not one this model makes: allowed are ${size} and auto`, 'size');
    }
    const { record } = await createPrediction(ctx, c.get('owner'), {
      input: { prompt: body.prompt, mode: 'image', n: body.n },
      images: [],
      shownInput: body,
      webhook: null,
      webhookEventsFilter: [],
      deadline: null,
      // the image budget is fixed, so a too-long prompt is the only way to run out of context
      param: (name) => (name === 'max_new_tokens' ? 'prompt' : name),
    });
    const done = await awaitResult(c, ctx, record.id);
    const images = (done.output ?? []).flat().filter((p) => p.type === 'image');
    const data = await Promise.all(
      images.map(async (p) =>
        body.response_format === 'b64_json'
          ? { b64_json: Buffer.from(await ctx.store.get(p.key)).toString('base64') }
          : { url: (await ctx.store.presignGet(p.key, ctx.limits.outputUrlSeconds)).url },
      ),
    );
    return c.json({ created: Math.floor(Date.parse(record.created_at) / 1000), data }, 200);
  });

  app.openapi(chatCompletionRoute, async (c) => {
    const body = c.req.valid('json');
    const { tokenizer, config } = ctx.processor;
    const chat = chatPrompt(body.messages, { sep: tokenizer.specialTokens.sep, image: config.imageToken });
    const budgetParam = body.max_completion_tokens !== undefined ? 'max_completion_tokens' : body.max_tokens !== undefined ? 'max_tokens' : 'messages';
    const greedy = body.temperature === 0;
    const { record, job } = await createPrediction(ctx, c.get('owner'), {
      input: {
        prompt: chat.prompt,
        mode: 'text',
        maxNewTokens: body.max_completion_tokens ?? body.max_tokens,
        n: body.n,
        sampling: {
          temperature: greedy ? undefined : body.temperature,
          greedy: greedy || undefined,
          topP: body.top_p,
          seed: body.seed,
          presencePenalty: body.presence_penalty,
          frequencyPenalty: body.frequency_penalty,
        },
        logitBias: body.logit_bias,
        stop: typeof body.stop === 'string' ? [body.stop] : (body.stop ?? undefined),
      },
      images: chat.images,
      shownInput: { ...body, messages: body.messages.length },
      webhook: null,
      webhookEventsFilter: [],
      deadline: null,
      param: (name) => {
        const image = /^images\[(\d+)\]$/.exec(name);
        if (image) return chat.imageParams[Number(image[1])];
        if (name === 'prompt' || name === 'images') return 'messages';
        if (name === 'max_new_tokens') return budgetParam;
        if (typeof body.stop === 'string' && name.startsWith('stop')) return 'stop';
        return name.replace(/^sampling\./, '');
      },
    });
    const info = {
      predictionId: record.id,
      id: `chatcmpl-${record.id}`,
      created: Math.floor(Date.parse(record.created_at) / 1000),
      model: body.model,
      n: job.n,
      promptTokens: job.promptIds.length,
      includeUsage: body.stream_options?.include_usage ?? false,
    };
    if (body.stream) return streamChat(c, ctx, info);

    const done = await awaitResult(c, ctx, record.id);
    const texts = (done.output ?? []).map((parts) => parts.map((p) => (p.type === 'text' ? p.text : '')).join(''));
    return c.json(
      {
        id: info.id,
        object: 'chat.completion' as const,
        created: info.created,
        model: info.model,
        choices: texts.map((content, index) => ({ index, message: { role: 'assistant' as const, content }, finish_reason: finishReason(done, index) })),
        usage: usage(done, info.promptTokens),
      },
      200,
    );
  });
}

/** Waits for a prediction these endpoints started; its failure is the request's failure. */
async function awaitResult(c: Context, ctx: ApiContext, id: string): Promise<PredictionRecord> {
  const signal = c.req.raw.signal;
  const seconds = ctx.limits.openaiWaitSeconds;
  const record = await waitForTerminal(ctx.predictions, id, { timeoutMs: seconds * 1000, pollMs: ctx.limits.pollMs, signal });
  if (!TERMINAL.has(record.status)) {
    if (signal.aborted) await requestCancel(ctx, id).catch(() => undefined); // nobody is waiting for it any more
    throw new ApiError(504, 'timeout', `not finished within ${seconds} s; it continues as prediction ${id} (GET /v1/predictions/${id})`);
  }
  if (record.status !== 'succeeded') throw new ApiError(500, `prediction_${record.status}`, record.error ?? `the prediction was ${record.status}`);
  return record;
}
