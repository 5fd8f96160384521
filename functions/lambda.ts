import { streamHandle } from 'hono/aws-lambda';
import { createApp } from './api/app.ts';
import { apiDepsFromEnv } from './api/deps-from-env.ts';

/**
 * The AWS Lambda entry, for a Function URL in RESPONSE_STREAM mode: responses (event streams
 * included) are streamed as they are written. Dependencies come from the environment once per
 * cold start (functions/api/deps-from-env.ts).
 */
export const handler = streamHandle(createApp(await apiDepsFromEnv()));
