import { z } from '@hono/zod-openapi';
import { LIMITS } from '../prepare-job.ts';

/**
 * The request and response shapes. These zod schemas validate every request (unknown fields are
 * rejected: strict objects throughout) and the same objects generate GET /openapi.json, so the
 * document cannot drift from what the server accepts. Checks that need the model (token ids in
 * the vocabulary, prompt length against the context) happen later, in prepareJob.
 */

const MAX_PROMPT_CHARS = 100_000; // bounds tokenizer work; the real bound is the context length in tokens
const MAX_NEW_TOKENS = 4096; // the context length; prepareJob checks prompt + new tokens against it

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_value' }),
      type: z
        .enum(['invalid_request_error', 'authentication_error', 'not_found_error', 'server_error'])
        .openapi({ description: "OpenAI's error class, for its clients: follows the status" }),
      message: z.string(),
      param: z.string().nullable().openapi({ example: 'input.sampling.temperature' }),
    }),
  })
  .openapi('Error');

export const ImageRefSchema = z
  .string()
  .regex(/^(https?:\/\/|data:|up_[0-9a-z]{26}$)/, 'an image must be an https URL, a data: URI or an upload id (up_…)')
  .openapi({ description: 'An https URL, a base64 data: URI, or an upload_id from POST /v1/uploads', example: 'https://example.com/cat.png' });

export const SamplingSchema = z
  .strictObject({
    temperature: z.number().gt(0).max(10).optional().openapi({ description: 'default: text 1.0, image 0.7' }),
    top_p: z.number().gt(0).max(1).optional().openapi({ description: 'default 0.9' }),
    top_k: z.number().int().min(0).optional().openapi({ description: '0 = off (default)' }),
    seed: z.number().int().min(0).max(2 ** 31 - 1).optional().openapi({ description: 'default: random; sequence k of n uses seed + k' }),
    repetition_penalty: z.number().min(1).max(10).optional().openapi({ description: 'text tokens only; default 1.2' }),
    presence_penalty: z.number().min(-2).max(2).optional().openapi({ description: "OpenAI's: subtracted from the logit of every text token generated before; default 0" }),
    frequency_penalty: z.number().min(-2).max(2).optional().openapi({ description: "OpenAI's: times how often a text token was generated, subtracted from its logit; default 0" }),
  })
  .openapi('Sampling');

export const GuidanceSchema = z
  .strictObject({
    text: z.number().min(1).max(20).optional().openapi({ description: 'classifier-free guidance scale for the text condition; default 3.0, 1 = off' }),
    image: z.number().min(1).max(20).optional().openapi({ description: 'guidance scale for the image condition; default 1.2, 1 = off' }),
  })
  .openapi('Guidance');

const TOKEN_ID_KEY = 'a token id in canonical decimal (0, 1, 2, …: no sign, leading zero, point or exponent)';

/**
 * Keys are canonical decimal ids, so no two keys name one token (`5`, `05`); zod's record drops an own
 * `__proto__` key without a word (it guards the result's prototype), so that one is refused before.
 */
export const LogitBiasSchema = z
  .preprocess((value, ctx) => {
    if (value !== null && typeof value === 'object' && Object.hasOwn(value, '__proto__')) {
      ctx.issues.push({ code: 'invalid_key', origin: 'record', path: ['__proto__'], input: value, message: 'Invalid key in record', issues: [{ code: 'custom', path: [], input: '__proto__', message: TOKEN_ID_KEY }] });
    }
    return value;
  }, z.record(z.string().regex(/^(0|[1-9]\d*)$/, TOKEN_ID_KEY), z.number().min(-100).max(100)))
  .refine((m) => Object.keys(m).length <= LIMITS.maxLogitBiasEntries, {
    message: `at most ${LIMITS.maxLogitBiasEntries} entries`,
  })
  .openapi('LogitBias', {
    description: `Token id → bias in [-100, 100], added to that token's logit after the mode's mask (a forbidden token stays forbidden); at most ${LIMITS.maxLogitBiasEntries} entries`,
    maxProperties: LIMITS.maxLogitBiasEntries,
    example: { '8197': 10 },
  });

const MAX_STOPS = LIMITS.maxStops; // OpenAI's limit
const StopStringSchema = z.string().min(1).max(256);

export const ModeSchema = z.enum(['text', 'image', 'interleaved']).openapi('Mode');

export const PredictionInputSchema = z
  .strictObject({
    prompt: z.string().max(MAX_PROMPT_CHARS).openapi({ description: 'The prompt; each `<image>` marks where the next image of `images` goes', example: 'A cat on a red sofa.' }),
    images: z.array(ImageRefSchema).max(LIMITS.maxImages).optional(),
    mode: ModeSchema.optional().openapi({ description: 'default text' }),
    max_new_tokens: z.number().int().min(1).max(MAX_NEW_TOKENS).optional(),
    n: z.number().int().min(1).max(LIMITS.maxN).optional().openapi({ description: 'sequences (e.g. images) from the one prompt; default 1' }),
    sampling: SamplingSchema.optional(),
    guidance: GuidanceSchema.optional(),
    logit_bias: LogitBiasSchema.optional(),
    stop: z.array(StopStringSchema).max(MAX_STOPS).optional().openapi({ description: 'text ends before the first of these strings (not included)' }),
  })
  .openapi('PredictionInput');

export const WebhookEventSchema = z.enum(['start', 'output', 'logs', 'completed']);

export const CreatePredictionSchema = z
  .strictObject({
    input: PredictionInputSchema,
    version: z.string().max(256).optional().openapi({ description: "Replicate's model version: accepted (its clients send it); the server runs its one model" }),
    stream: z.boolean().optional().openapi({ description: 'accepted for Replicate clients: every prediction can be streamed at urls.stream' }),
    webhook: z.string().max(2048).optional().openapi({ description: 'https URL POSTed the prediction, signed per Standard Webhooks' }),
    webhook_events_filter: z.array(WebhookEventSchema).optional().openapi({ description: 'default: start, completed' }),
  })
  .openapi('CreatePrediction');

/** Replicate's body for the routes that name the model (no version: the path says which). */
export const CreateModelPredictionSchema = CreatePredictionSchema.omit({ version: true }).openapi('CreateModelPrediction');

export const StreamQuerySchema = z.strictObject({
  protocol: z
    .enum(['replicate', 'anole'])
    .optional()
    .openapi({ param: { name: 'protocol', in: 'query' }, description: "replicate: Replicate's events (urls.stream asks for them); anole (default): this service's own" }),
  token: z.string().max(128).optional().openapi({ param: { name: 'token', in: 'query' }, description: "urls.stream's credential: opens this stream without the Authorization header" }),
});

export const StatusSchema = z.enum(['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted']).openapi('Status');

export const OutputPartSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('text'), sequence: z.number().int(), text: z.string() }),
    z.object({
      type: z.literal('image'),
      sequence: z.number().int(),
      url: z.string().openapi({ description: 'presigned GET URL' }),
      expires_at: z.string().openapi({ description: 'when url stops working' }),
      width: z.number().int(),
      height: z.number().int(),
    }),
  ])
  .openapi('OutputPart', { description: 'Parts in generation order; sequence is k of the n sequences' });

export const PredictionSchema = z
  .object({
    id: z.string(),
    status: StatusSchema,
    input: z.record(z.string(), z.unknown()),
    output: z.array(OutputPartSchema).nullable(),
    error: z.string().nullable(),
    created_at: z.string(),
    started_at: z.string().nullable(),
    completed_at: z.string().nullable(),
    deadline: z.string().nullable(),
    metrics: z.object({
      predict_time: z.number().optional().openapi({ description: 'seconds the worker spent generating (a wait for a free cache slot left out)' }),
      generated_tokens: z.number().optional(),
      finish_reasons: z.array(z.enum(['eos', 'length', 'image', 'canceled', 'stop'])).optional().openapi({ description: 'per sequence' }),
    }),
    urls: z.object({ get: z.string(), cancel: z.string(), stream: z.string() }),
  })
  .openapi('Prediction');

const eventOf = <T extends string, S extends z.ZodRawShape>(type: T, shape: S, description: string) =>
  z.object({ event: z.literal(type), data: z.object(shape) }).openapi({ description });

/** The stream's events (its own protocol): the SSE `event` name and its JSON `data`. */
export const StreamEventSchema = z
  .discriminatedUnion('event', [
    eventOf('status', { status: z.lazy(() => StatusSchema) }, 'the status, first, and each change'),
    eventOf('text', { sequence: z.number().int(), delta: z.string() }, 'text generated by sequence k'),
    eventOf(
      'image_rows',
      { sequence: z.number().int(), image: z.number().int(), rows: z.number().int(), total_rows: z.number().int(), preview_url: z.string().optional(), expires_at: z.string().optional() },
      'rows of an image that are final (with a preview when the worker makes them)',
    ),
    eventOf(
      'image',
      { sequence: z.number().int(), image: z.number().int(), url: z.string(), expires_at: z.string(), width: z.number().int(), height: z.number().int() },
      'a finished image',
    ),
    eventOf('error', { message: z.string() }, 'why the prediction failed'),
    eventOf('done', { status: z.lazy(() => StatusSchema) }, 'the last event'),
    eventOf('reconnect', { reason: z.string(), poll: z.string() }, 'the server is shutting down: reconnect with Last-Event-ID, or poll'),
  ])
  .openapi('StreamEvent', { description: 'One server-sent event: `event` is the SSE event name, `data` its JSON data line' });

export const PredictionListSchema = z
  .object({ results: z.array(PredictionSchema), next: z.string().nullable().openapi({ description: 'URL of the next (older) page' }) })
  .openapi('PredictionList');

export const IdParamSchema = z.object({ id: z.string().regex(/^[0-9a-z]{1,64}$/).openapi({ param: { name: 'id', in: 'path' } }) });

export const ListQuerySchema = z.strictObject({
  cursor: z.string().max(512).optional().openapi({ param: { name: 'cursor', in: 'query' } }),
  limit: z.coerce.number().int().min(1).max(100).optional().openapi({ param: { name: 'limit', in: 'query' }, type: 'integer' }),
});

export const UPLOAD_CONTENT_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/tiff', 'image/avif'] as const;

export const CreateUploadSchema = z
  .strictObject({
    content_type: z.enum(UPLOAD_CONTENT_TYPES).openapi({ description: 'signed: the PUT must send this Content-Type' }),
  })
  .openapi('CreateUpload');

export const UploadSchema = z
  .object({
    upload_id: z.string().openapi({ description: 'use as an image in a prediction' }),
    url: z.string(),
    method: z.literal('PUT'),
    headers: z.record(z.string(), z.string()),
    expires_at: z.string(),
    max_bytes: z.number().int().openapi({ description: 'larger uploads are refused when used (413)' }),
  })
  .openapi('Upload');

// OpenAI-compatible shapes: the fields their clients send, nothing more.

export const ImageGenerationRequestSchema = z
  .strictObject({
    prompt: z.string().min(1).max(MAX_PROMPT_CHARS),
    model: z.string().optional().openapi({ description: 'accepted and echoed; the server runs its one model' }),
    n: z.number().int().min(1).max(LIMITS.maxN).optional(),
    size: z
      .union([z.literal('auto'), z.string().regex(/^\d+x\d+$/, 'WIDTHxHEIGHT or auto')])
      .optional()
      .openapi({ description: "auto or the model's image size (512x512 for Anole); any other is 422" }),
    response_format: z.enum(['url', 'b64_json']).optional(),
    // hints OpenAI documents that mean nothing for this model: accepted so clients work, then ignored
    user: z.string().optional().openapi({ description: 'accepted, ignored' }),
    quality: z.enum(['auto', 'standard', 'hd', 'low', 'medium', 'high']).optional().openapi({ description: 'accepted, ignored: the model has one quality' }),
    style: z.enum(['vivid', 'natural']).optional().openapi({ description: 'accepted, ignored' }),
    output_format: z.literal('png').optional().openapi({ description: 'png only (the images are PNG)' }),
    moderation: z.enum(['auto', 'low']).optional().openapi({ description: 'accepted, ignored: there is no moderation here' }),
  })
  .openapi('ImageGenerationRequest');

export const ImageGenerationResponseSchema = z
  .object({
    created: z.number().int(),
    data: z.array(z.object({ url: z.string().optional(), b64_json: z.string().optional() })),
  })
  .openapi('ImageGenerationResponse');

const ContentPartSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text'), text: z.string() }),
  z.strictObject({
    type: z.literal('image_url'),
    image_url: z.strictObject({ url: ImageRefSchema, detail: z.enum(['auto', 'low', 'high']).optional() }),
  }),
]);

export const ChatMessageSchema = z
  .strictObject({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(ContentPartSchema)]),
    name: z.string().optional(),
  })
  .openapi('ChatMessage');

export const ChatCompletionRequestSchema = z
  .strictObject({
    model: z.string(),
    messages: z.array(ChatMessageSchema).min(1),
    max_tokens: z.number().int().min(1).max(MAX_NEW_TOKENS).optional(),
    max_completion_tokens: z.number().int().min(1).max(MAX_NEW_TOKENS).optional(),
    n: z.number().int().min(1).max(LIMITS.maxN).optional(),
    temperature: z.number().min(0).max(2).optional().openapi({ description: '0 = greedy' }),
    top_p: z.number().gt(0).max(1).optional(),
    seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
    logit_bias: LogitBiasSchema.optional(),
    presence_penalty: z.number().min(-2).max(2).optional(),
    frequency_penalty: z.number().min(-2).max(2).optional(),
    stop: z.union([StopStringSchema, z.array(StopStringSchema).max(MAX_STOPS)]).nullable().optional().openapi({ description: 'up to 4 strings; the text ends before the first one (not included)' }),
    stream: z.boolean().optional(),
    stream_options: z.strictObject({ include_usage: z.boolean().optional() }).optional(),
    user: z.string().optional().openapi({ description: 'accepted, ignored' }),
  })
  .openapi('ChatCompletionRequest');

export const ChatCompletionSchema = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int(),
        message: z.object({ role: z.literal('assistant'), content: z.string() }),
        finish_reason: z.enum(['stop', 'length']),
      }),
    ),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }),
  })
  .openapi('ChatCompletion');

const OpenAiModelSchema = z.object({
  id: z.string().openapi({ example: 'anole/anole-7b' }),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
});

export const ModelSchema = OpenAiModelSchema.extend({
  url: z.string(),
  owner: z.string(),
  name: z.string(),
  description: z.string(),
  visibility: z.literal('public'),
  github_url: z.string().nullable(),
  paper_url: z.string().nullable(),
  license_url: z.string().nullable(),
  run_count: z.number().int(),
  cover_image_url: z.string().nullable(),
  default_example: z.null(),
  latest_version: z.object({
    id: z.string().openapi({ description: "Replicate's version id: any version is accepted, the server runs its one model" }),
    created_at: z.string(),
    cog_version: z.null(),
    openapi_schema: z.record(z.string(), z.unknown()),
  }),
}).openapi('Model', { description: "Replicate's model, with OpenAI's id / object / created / owned_by" });

export const ModelListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(OpenAiModelSchema).openapi({ description: "OpenAI's list" }),
    results: z.array(ModelSchema).openapi({ description: "Replicate's list" }),
    next: z.null(),
    previous: z.null(),
  })
  .openapi('ModelList');

export const ChatCompletionChunkSchema = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion.chunk'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int(),
        delta: z.object({ role: z.literal('assistant').optional(), content: z.string().optional() }),
        finish_reason: z.enum(['stop', 'length']).nullable(),
      }),
    ),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }).optional(),
  })
  .openapi('ChatCompletionChunk', { description: 'each `data:` line of a streamed chat completion, until `data: [DONE]`' });

export const HealthSchema = z.object({ status: z.literal('ok') }).openapi('Health');

export type PredictionInputBody = z.infer<typeof PredictionInputSchema>;
export type CreatePredictionBody = z.infer<typeof CreatePredictionSchema>;
export type PredictionView = z.infer<typeof PredictionSchema>;
export type OutputPartView = z.infer<typeof OutputPartSchema>;
export type ChatCompletionBody = z.infer<typeof ChatCompletionRequestSchema>;
