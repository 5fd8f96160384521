import type { PredictionRecord } from '../../contract/prediction.ts';
import type { PresignedUrl } from '../../contract/s3-blob-store.ts';
import type { OutputPartView, PredictionView } from './schemas.ts';

/**
 * A stored prediction as the API shows it. The record keeps blob keys; the view replaces each
 * with a presigned GET made now (the bucket is private: a URL with an expiry is the only way out)
 * and flattens the n sequences into one ordered list of parts, each saying which sequence it is.
 */
export interface ViewContext {
  presignGet(key: string, expiresInSeconds?: number): Promise<PresignedUrl>;
  /** The API's origin as the caller reached it, for `urls`. */
  origin: string;
  urlExpirySeconds: number;
  /** The stream URL's token for a prediction (stream-token.ts); absent when keys are off. */
  streamToken?: (predictionId: string) => string;
}

export async function renderPrediction(r: PredictionRecord, ctx: ViewContext): Promise<PredictionView> {
  const base = `${ctx.origin}/v1/predictions/${r.id}`;
  return {
    id: r.id,
    status: r.status,
    input: r.input,
    output: r.output ? await renderOutput(r.output, ctx) : null,
    error: r.error,
    created_at: r.created_at,
    started_at: r.started_at,
    completed_at: r.completed_at,
    deadline: r.deadline,
    metrics: r.metrics,
    // urls.stream speaks Replicate's stream protocol, for its clients; the path alone gives this service's own events
    urls: { get: base, cancel: `${base}/cancel`, stream: `${base}/stream?${new URLSearchParams({ protocol: 'replicate', ...(ctx.streamToken ? { token: ctx.streamToken(r.id) } : {}) })}` },
  };
}

async function renderOutput(sequences: NonNullable<PredictionRecord['output']>, ctx: ViewContext): Promise<OutputPartView[]> {
  const parts = sequences.flatMap((parts, sequence) => parts.map((part) => ({ part, sequence })));
  return Promise.all(
    parts.map(async ({ part, sequence }): Promise<OutputPartView> => {
      if (part.type === 'text') return { type: 'text', sequence, text: part.text };
      const { url, expiresAt } = await ctx.presignGet(part.key, ctx.urlExpirySeconds);
      return { type: 'image', sequence, url, expires_at: expiresAt, width: part.width, height: part.height };
    }),
  );
}
