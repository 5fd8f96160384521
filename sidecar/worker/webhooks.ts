import { createHash, randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { WebhookEvent } from '../../contract/prediction.ts';

/**
 * Webhook deliveries signed per Standard Webhooks (webhook-id, webhook-timestamp,
 * webhook-signature = v1,base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))), retried with
 * exponential backoff. The webhook-id is derived from (prediction, event, index), so it is the
 * same on every retry, and on a retried job too: receivers dedupe on it.
 */
export interface WebhookSenderOptions {
  /** `whsec_` + base64 of the key (what the receiver verifies with). */
  secret: string;
  /** Deliveries tried per event, the first included. */
  maxAttempts?: number;
  /** Backoff before retry k (1-based): baseDelayMs · 2^(k-1), capped at maxDelayMs, ±20 % jitter. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Per attempt. */
  timeoutMs?: number;
  /** Throws to refuse a destination (SSRF policy); called before every attempt (DNS may change). */
  checkUrl?: (url: string) => Promise<void>;
  log?: (message: string) => void;
}

export interface WebhookDelivery {
  url: string;
  predictionId: string;
  event: WebhookEvent;
  /** Tells apart several deliveries of one event (the k-th `output`); 0 otherwise. */
  index?: number;
  /** The JSON body: the prediction as the API shows it. */
  payload: unknown;
}

export interface DeliveryOutcome {
  webhookId: string;
  delivered: boolean;
  attempts: number;
  /** The last answer's HTTP status, when there was one. */
  status?: number;
  error?: string;
}

/** A fresh secret in the Standard Webhooks format. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

export function webhookId(predictionId: string, event: WebhookEvent, index = 0): string {
  return `msg_${createHash('sha256').update(`${predictionId}:${event}:${index}`).digest('base64url').slice(0, 27)}`;
}

/** Replicate's rule: no filter (or an empty one) means every event. */
export function wantsEvent(filter: readonly WebhookEvent[] | null | undefined, event: WebhookEvent): boolean {
  return !filter || filter.length === 0 || filter.includes(event);
}

export class WebhookSender {
  private readonly signer: Webhook;
  private readonly pending = new Set<Promise<DeliveryOutcome>>();
  readonly opts: Required<Omit<WebhookSenderOptions, 'checkUrl' | 'log'>> & Pick<WebhookSenderOptions, 'checkUrl' | 'log'>;

  constructor(opts: WebhookSenderOptions) {
    this.signer = new Webhook(opts.secret);
    this.opts = { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 60_000, timeoutMs: 10_000, ...opts };
  }

  /** Starts a delivery in the background; idle() waits for every one started. */
  send(d: WebhookDelivery): Promise<DeliveryOutcome> {
    const p = this.deliver(d);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Delivers one event, retrying until a 2xx or maxAttempts. Never throws. */
  async deliver(d: WebhookDelivery): Promise<DeliveryOutcome> {
    const id = webhookId(d.predictionId, d.event, d.index);
    const body = JSON.stringify(d.payload);
    let status: number | undefined;
    let error: string | undefined;
    for (let attempt = 1; attempt <= this.opts.maxAttempts; attempt++) {
      if (attempt > 1) await sleep(this.backoff(attempt - 1));
      try {
        await this.opts.checkUrl?.(d.url);
      } catch (e) {
        // a refused destination stays refused: no retry
        error = `refused: ${(e as Error).message}`;
        this.opts.log?.(`webhook ${id} (${d.event}) to ${d.url}: ${error}`);
        return { webhookId: id, delivered: false, attempts: attempt, error };
      }
      try {
        const now = new Date();
        const res = await fetch(d.url, {
          method: 'POST',
          body,
          headers: {
            'content-type': 'application/json',
            'webhook-id': id,
            'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
            'webhook-signature': this.signer.sign(id, now, body),
          },
          // a redirect could point anywhere, past the address check: treat it as a failure
          redirect: 'manual',
          signal: AbortSignal.timeout(this.opts.timeoutMs),
        });
        await res.body?.cancel();
        status = res.status;
        if (res.ok) return { webhookId: id, delivered: true, attempts: attempt, status };
        error = `HTTP ${res.status}`;
      } catch (e) {
        status = undefined;
        error = (e as Error).message;
      }
      this.opts.log?.(`webhook ${id} (${d.event}) to ${d.url}: attempt ${attempt}/${this.opts.maxAttempts} failed: ${error}`);
    }
    return { webhookId: id, delivered: false, attempts: this.opts.maxAttempts, status, error };
  }

  private backoff(retry: number): number {
    const base = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (retry - 1));
    return base * (0.8 + 0.4 * Math.random());
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
