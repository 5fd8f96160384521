import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { TERMINAL, type PredictionRecord } from '../../contract/prediction.ts';
import { abortAfter } from './abort-after.ts';
import type { ApiContext } from './deps.ts';
import { followEvents } from './follow-prediction.ts';
import { requestCancel } from './cancel-prediction.ts';

/**
 * A chat completion streamed the way OpenAI clients read it: `data: {chat.completion.chunk}`
 * lines — first the role, then content deltas per choice, then each choice's finish_reason, the
 * usage when asked — and `data: [DONE]`.
 *
 * The deltas come from the prediction's event log. When a job is retried (a worker died), the
 * log starts its text again after a second `processing`; what the client already has is not
 * sent twice: the new attempt's text is held back until it passes what was sent. (The job's seed
 * is fixed, so a retry normally regenerates the same text; if it does not, the stream ends with
 * an error rather than contradict itself.) A client that hangs up cancels the prediction.
 */
export interface ChatStreamInfo {
  predictionId: string;
  id: string;
  created: number;
  model: string;
  n: number;
  promptTokens: number;
  includeUsage: boolean;
}

export function streamChat(c: Context, ctx: ApiContext, info: ChatStreamInfo): Response {
  const { n } = info;
  return streamSSE(c, async (stream) => {
    const hungUp = new AbortController();
    stream.onAbort(() => {
      hungUp.abort();
      void requestCancel(ctx, info.predictionId).catch(() => undefined);
    });
    const send = (payload: unknown) => stream.writeSSE({ data: JSON.stringify(payload) });
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      send({ id: info.id, object: 'chat.completion.chunk', created: info.created, model: info.model, choices, ...extra });

    for (let k = 0; k < n; k++) await chunk([{ index: k, delta: { role: 'assistant', content: '' }, finish_reason: null }]);
    const sent = new Array<string>(n).fill('');
    let attempt = new Array<string>(n).fill('');
    let attempts = 0;
    let failure: string | null = null;

    const deadline = abortAfter(ctx.limits.openaiWaitSeconds * 1000, hungUp.signal);
    const events = followEvents(ctx.predictions, info.predictionId, { afterSeq: -1, pollMs: ctx.limits.pollMs, signal: deadline.signal });
    try {
      for await (const { event } of events) {
        if (event.type === 'status' && event.status === 'processing' && ++attempts > 1) attempt = new Array<string>(n).fill('');
        if (event.type === 'error') failure = event.message;
        if (event.type !== 'text') continue;
        const k = event.sequence;
        attempt[k] += event.delta;
        const [longer, shorter] = attempt[k].length > sent[k].length ? [attempt[k], sent[k]] : [sent[k], attempt[k]];
        if (!longer.startsWith(shorter)) {
          failure = 'the job was retried and produced different text';
          await requestCancel(ctx, info.predictionId).catch(() => undefined);
          break;
        }
        if (attempt[k].length > sent[k].length) {
          const delta = attempt[k].slice(sent[k].length);
          sent[k] = attempt[k];
          await chunk([{ index: k, delta: { content: delta }, finish_reason: null }]);
        }
      }
    } finally {
      deadline.clear();
    }
    if (hungUp.signal.aborted) return;

    const record = (await ctx.predictions.get(info.predictionId))?.value;
    if (failure || !record || record.status !== 'succeeded') {
      const unfinished = record && !TERMINAL.has(record.status);
      const message =
        failure ??
        (unfinished ? `not finished within ${ctx.limits.openaiWaitSeconds} s; it continues as prediction ${info.predictionId}` : null) ??
        record?.error ??
        `the prediction ended ${record?.status ?? 'without a record'}`;
      await send({ error: { message, type: 'server_error', code: `prediction_${record?.status ?? 'failed'}`, param: null } });
    } else {
      for (let k = 0; k < n; k++) await chunk([{ index: k, delta: {}, finish_reason: finishReason(record, k) }]);
      if (info.includeUsage) await chunk([], { usage: usage(record, info.promptTokens) });
    }
    await stream.writeSSE({ data: '[DONE]' });
  });
}

export function finishReason(record: PredictionRecord, k: number): 'stop' | 'length' {
  return record.metrics.finish_reasons?.[k] === 'length' ? 'length' : 'stop';
}

export function usage(record: PredictionRecord, promptTokens: number) {
  const completion = record.metrics.generated_tokens ?? 0;
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}
