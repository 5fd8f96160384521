import { createHash, randomUUID } from 'node:crypto';
import { PreconditionFailedError, type S3BlobStore } from '../../contract/s3-blob-store.ts';
import { ApiError } from './errors.ts';

/**
 * Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header): a client retrying a POST
 * with the same key gets the first response instead of a second prediction.
 *
 * One record per (owner, key) at `idempotency/{owner}/{sha256(key)}.json`, created with
 * If-None-Match: * — of two concurrent requests exactly one creates it and runs; the other sees
 * the record and answers:
 *   same body, first still running  → 409 (retry later)
 *   same body, first finished       → the stored response, replayed (Idempotent-Replayed: true)
 *   different body                  → 422 (a key names one request)
 * Only a request that succeeded is remembered: on an error the record is deleted, so the client
 * may fix the request or retry a transient failure with the same key (Stripe's rule). A record
 * whose runner died keeps others out only until its lease ends; every record expires after `ttlMs`.
 * Once the runner has made its prediction it notes the id in the record and shortens the lease to
 * what is left of its wait: if it dies then (a crash mid-wait), a retry after the lease finds that
 * prediction and answers with it as it stands (`resume`), never making a second one. A 409 says
 * when the lease ends (Retry-After).
 */
export interface StoredResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

interface IdempotencyRecord {
  fingerprint: string;
  state: 'in_flight' | 'done';
  created_at: string;
  /** In flight: until then the runner is presumed alive. */
  lease_until: string;
  /**
   * Unique to the request that wrote the claim: two requests with the same key at the same millisecond
   * would otherwise write the same bytes, and a claim whose answer was lost is recognised by its bytes
   * (S3BlobStore's conditional writes).
   */
  claim?: string;
  /** In flight: the prediction the runner made, once it exists. */
  prediction_id?: string;
  response?: StoredResponse;
}

/** What the runner tells the record as it goes: its prediction exists, and it needs the key `leaseMs` more. */
export type NoteProgress = (predictionId: string, leaseMs: number) => Promise<void>;

export interface IdempotencyOptions {
  /** How long a key is remembered (the draft's expiry; Stripe uses 24 h). */
  ttlMs: number;
  /** Longer than any request may take (preparation plus Prefer: wait). */
  leaseMs: number;
  now: () => number;
}

type Store = Pick<S3BlobStore, 'getWithEtag' | 'putIfAbsent' | 'putIfMatch' | 'delete'>;

/** The key as sent: 1–255 printable ASCII characters. */
export function checkIdempotencyKey(key: string): void {
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new ApiError(400, 'invalid_request', 'Idempotency-Key must be 1 to 255 printable ASCII characters without spaces', 'Idempotency-Key');
  }
}

/** What makes two requests "the same": method, path and the JSON body up to key order and whitespace. */
export function fingerprint(method: string, path: string, body: unknown, extra: Record<string, string | undefined> = {}): string {
  return createHash('sha256').update(`${method} ${path}\n${canonicalJson(body)}\n${canonicalJson(extra)}`).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export function idempotencyRecordKey(owner: string, key: string): string {
  return `idempotency/${owner}/${createHash('sha256').update(key).digest('hex')}.json`;
}

/**
 * Runs `run` at most once per (owner, key) within the expiry; returns its response, or the stored
 * one with `replayed` set. Throws ApiError 409 / 422 as above.
 */
export async function idempotent(
  store: Store,
  opts: IdempotencyOptions & { owner: string; key: string; fingerprint: string },
  run: (note: NoteProgress) => Promise<StoredResponse>,
  resume: (predictionId: string) => Promise<StoredResponse>,
): Promise<StoredResponse & { replayed: boolean }> {
  const recordKey = idempotencyRecordKey(opts.owner, opts.key);
  const claimed = await claim(store, recordKey, opts);
  if (typeof claimed !== 'string') return { ...('resume' in claimed ? await resume(claimed.resume) : claimed), replayed: true };
  let etag = claimed;

  const note: NoteProgress = async (predictionId, leaseMs) => {
    const now = opts.now();
    const record: IdempotencyRecord = {
      fingerprint: opts.fingerprint,
      state: 'in_flight',
      created_at: new Date(now).toISOString(),
      lease_until: new Date(now + leaseMs).toISOString(),
      claim: randomUUID(),
      prediction_id: predictionId,
    };
    etag = await store.putIfMatch(recordKey, JSON.stringify(record), 'application/json', etag).catch((e) => {
      if (!(e instanceof PreconditionFailedError)) throw e;
      return etag; // taken over (our lease ran out): the final write will lose too, and ours still answers
    });
  };
  let response: StoredResponse;
  try {
    response = await run(note);
  } catch (e) {
    await store.delete(recordKey).catch(() => undefined); // let a corrected or retried request run
    throw e;
  }
  const now = opts.now();
  const done: IdempotencyRecord = {
    fingerprint: opts.fingerprint,
    state: 'done',
    created_at: new Date(now).toISOString(),
    lease_until: new Date(now).toISOString(),
    response,
  };
  // a lost write means the lease ran out and another request took the key over; ours still answers
  await store.putIfMatch(recordKey, JSON.stringify(done), 'application/json', etag).catch((e) => {
    if (!(e instanceof PreconditionFailedError)) throw e;
  });
  return { ...response, replayed: false };
}

/** Takes the key (returns the in-flight record's ETag), or returns the stored response to replay, or the prediction of a runner that died. */
async function claim(store: Store, recordKey: string, opts: IdempotencyOptions & { fingerprint: string }): Promise<string | StoredResponse | { resume: string }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const now = opts.now();
    const record = JSON.stringify({
      fingerprint: opts.fingerprint,
      state: 'in_flight',
      created_at: new Date(now).toISOString(),
      lease_until: new Date(now + opts.leaseMs).toISOString(),
      claim: randomUUID(),
    } satisfies IdempotencyRecord);
    try {
      return await store.putIfAbsent(recordKey, record, 'application/json');
    } catch (e) {
      if (!(e instanceof PreconditionFailedError)) throw e;
    }
    const existing = await store.getWithEtag(recordKey);
    if (!existing) continue; // deleted meanwhile (its request failed): try to create it again
    const stored = JSON.parse(new TextDecoder().decode(existing.body)) as IdempotencyRecord;
    const expired = Date.parse(stored.created_at) + opts.ttlMs <= now;
    const abandoned = stored.state === 'in_flight' && Date.parse(stored.lease_until) <= now;
    // its runner died after making the prediction: that prediction is the answer
    if (!expired && abandoned && stored.prediction_id && stored.fingerprint === opts.fingerprint) return { resume: stored.prediction_id };
    if (expired || abandoned) {
      try {
        return await store.putIfMatch(recordKey, record, 'application/json', existing.etag);
      } catch (e) {
        if (!(e instanceof PreconditionFailedError)) throw e;
        continue; // someone else took it over first: look again
      }
    }
    if (stored.fingerprint !== opts.fingerprint) {
      throw new ApiError(422, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request', 'Idempotency-Key');
    }
    if (stored.state === 'in_flight') {
      const retryAfter = Math.max(1, Math.ceil((Date.parse(stored.lease_until) - now) / 1000));
      throw new ApiError(409, 'idempotency_conflict', `a request with this Idempotency-Key is still being processed; retry in ${retryAfter} s`, 'Idempotency-Key', {
        'Retry-After': String(retryAfter),
      });
    }
    return stored.response!;
  }
  throw new ApiError(409, 'idempotency_conflict', 'this Idempotency-Key is contended; retry later', 'Idempotency-Key', { 'Retry-After': '1' });
}
