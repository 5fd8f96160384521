import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';
import type { WebhookEvent } from '../../contract/prediction.ts';
import { AddressRefusedError, checkUrl, guardedLookup, type AddressPolicy } from '../../contract/address-policy.ts';

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
  /**
   * Where deliveries may go (SSRF): the scheme and literal address are checked before each attempt,
   * and every address the host resolves to when connecting (so DNS rebinding gains nothing).
   * Redirects are never followed. Unset = anywhere (tests on loopback only).
   */
  policy?: AddressPolicy;
  /** An extra check before each attempt; throwing refuses the destination (no retry). */
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
  readonly opts: Required<Omit<WebhookSenderOptions, 'policy' | 'checkUrl' | 'log'>> & Pick<WebhookSenderOptions, 'policy' | 'checkUrl' | 'log'>;

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
        error = `refused: ${(e as Error).message}`;
        this.opts.log?.(`webhook ${id} (${d.event}) to ${d.url}: ${error}`);
        return { webhookId: id, delivered: false, attempts: attempt, error };
      }
      try {
        const now = new Date();
        status = await this.post(d.url, body, {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': this.signer.sign(id, now, body),
        });
        if (status >= 200 && status < 300) return { webhookId: id, delivered: true, attempts: attempt, status };
        error = `HTTP ${status}`;
      } catch (e) {
        status = undefined;
        error = (e as Error).message;
        if (e instanceof AddressRefusedError) {
          // a refused destination stays refused: no retry
          this.opts.log?.(`webhook ${id} (${d.event}) to ${d.url}: refused: ${error}`);
          return { webhookId: id, delivered: false, attempts: attempt, error: `refused: ${error}` };
        }
      }
      this.opts.log?.(`webhook ${id} (${d.event}) to ${d.url}: attempt ${attempt}/${this.opts.maxAttempts} failed: ${error}`);
    }
    return { webhookId: id, delivered: false, attempts: this.opts.maxAttempts, status, error };
  }

  /** One POST; resolves with the status (a 3xx is an answer, never followed). */
  private post(raw: string, body: string, headers: Record<string, string>): Promise<number> {
    const { policy, timeoutMs } = this.opts;
    const url = policy ? checkUrl(raw, policy) : new URL(raw);
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = client.request(
        url,
        { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, lookup: policy ? (guardedLookup(policy) as never) : undefined },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  private backoff(retry: number): number {
    const base = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (retry - 1));
    return base * (0.8 + 0.4 * Math.random());
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
