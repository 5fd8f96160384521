import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { TERMINAL, TRANSITIONS, type PredictionEvent, type PredictionRecord, type PredictionStatus } from './prediction.ts';
import { PreconditionFailedError, type S3BlobStore } from './s3-blob-store.ts';

/*
 * Layout in the bucket:
 *   predictions/{id}/status.json             the record; created with If-None-Match: *, changed with If-Match: <etag>
 *   predictions/{id}/events/{seq:000000}.json the event log, seq 0, 1, 2… (each created with If-None-Match: *)
 *   owners/{owner}/{13-digit inverted ms}-{id} an empty marker per prediction, so an owner's list is one
 *                                             ListObjectsV2, newest first, without reading every record
 */

export interface Versioned<T> {
  value: T;
  etag: string;
}

export interface SequencedEvent {
  seq: number;
  event: PredictionEvent;
}

export interface PredictionPage {
  predictions: PredictionRecord[];
  /** Pass back as `cursor` for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

export class PredictionNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`no prediction ${id}`);
    this.name = 'PredictionNotFoundError';
  }
}

export class PredictionExistsError extends Error {
  constructor(readonly id: string) {
    super(`prediction ${id} already exists`);
    this.name = 'PredictionExistsError';
  }
}

/** An update the lifecycle forbids: a move not in TRANSITIONS, any change to a terminal record, or a changed identity field. */
export class InvalidTransitionError extends Error {
  constructor(
    readonly id: string,
    readonly from: PredictionStatus,
    readonly to: PredictionStatus,
    reason?: string,
  ) {
    super(`prediction ${id}: ${reason ?? `cannot move from ${from} to ${to}`}`);
    this.name = 'InvalidTransitionError';
  }
}

export class InvalidCursorError extends Error {
  constructor() {
    super('invalid cursor');
    this.name = 'InvalidCursorError';
  }
}

const JSON_TYPE = 'application/json';
const FIXED_FIELDS = ['id', 'owner', 'created_at', 'job'] as const;
const MAX_TIME = 9_999_999_999_999; // 13 digits of ms: past year 2286

export const statusKey = (id: string) => `predictions/${id}/status.json`;
export const eventsPrefix = (id: string) => `predictions/${id}/events/`;
export const eventKey = (id: string, seq: number) => `${eventsPrefix(id)}${String(seq).padStart(6, '0')}.json`;
const ownerPrefix = (owner: string) => `owners/${encodeURIComponent(owner)}/`;
const ownerKey = (r: PredictionRecord) => `${ownerPrefix(r.owner)}${String(MAX_TIME - Date.parse(r.created_at)).padStart(13, '0')}-${r.id}`;

/**
 * Prediction records and their event logs, kept in S3 and changed only by conditional writes,
 * so concurrent writers (the API cancelling, a worker finishing, a retried message) never
 * overwrite each other and a finished prediction never moves again.
 */
export class PredictionStore {
  /** Next free seq per prediction this process appends to (a guess: a lost race re-lists). */
  private nextSeq = new Map<string, number>();

  constructor(readonly blobs: S3BlobStore) {}

  async create(record: PredictionRecord): Promise<Versioned<PredictionRecord>> {
    const written = withRevision(record, randomUUID());
    let etag: string;
    try {
      etag = await this.blobs.putIfAbsent(statusKey(record.id), JSON.stringify(written), JSON_TYPE);
    } catch (e) {
      if (e instanceof PreconditionFailedError) throw new PredictionExistsError(record.id);
      throw e;
    }
    await this.blobs.put(ownerKey(record), record.id, 'text/plain');
    return { value: written, etag };
  }

  async get(id: string): Promise<Versioned<PredictionRecord> | undefined> {
    const blob = await this.blobs.getWithEtag(statusKey(id));
    return blob && { value: JSON.parse(new TextDecoder().decode(blob.body)) as PredictionRecord, etag: blob.etag };
  }

  /**
   * Read, mutate, write back If-Match; on a lost race, read again and re-run `mutate` on the newer
   * record. `mutate` gets a copy and returns the new record, or null to leave it as it is (then the
   * current record is returned). Throws PredictionNotFoundError or InvalidTransitionError.
   */
  async update(id: string, mutate: (current: PredictionRecord) => PredictionRecord | null, opts: { maxAttempts?: number } = {}): Promise<Versioned<PredictionRecord>> {
    const maxAttempts = opts.maxAttempts ?? 20;
    let current = await this.get(id);
    for (let attempt = 1; ; attempt++) {
      if (!current) throw new PredictionNotFoundError(id);
      const next = mutate(structuredClone(current.value));
      if (next === null || isDeepStrictEqual(next, current.value)) return current;
      checkUpdate(current.value, next);
      const revision = randomUUID();
      const written = withRevision(next, revision);
      try {
        const etag = await this.blobs.putIfMatch(statusKey(id), JSON.stringify(written), JSON_TYPE, current.etag);
        return { value: written, etag };
      } catch (e) {
        if (!(e instanceof PreconditionFailedError)) throw e;
        await sleep(Math.random() * 20 * attempt);
        current = await this.get(id);
        // our write landed, its answer was lost, and another writer has written since (the blob store's
        // read-back no longer finds our bytes): the record still lists it
        if (current?.value.revisions?.includes(revision)) return current;
        if (attempt >= maxAttempts) throw e;
      }
    }
  }

  /** An owner's predictions, newest first, `limit` per page; a cursor from another owner throws InvalidCursorError. */
  async listByOwner(owner: string, opts: { limit?: number; cursor?: string | null } = {}): Promise<PredictionPage> {
    const limit = opts.limit ?? 20;
    const startAfter = opts.cursor ? decodeCursor(opts.cursor, ownerPrefix(owner)) : undefined;
    const { keys, truncated } = await this.blobs.list(ownerPrefix(owner), { startAfter, limit });
    const records = await Promise.all(keys.map((k) => this.get(idOfOwnerKey(k))));
    return {
      predictions: records.filter((r) => r !== undefined).map((r) => r.value),
      nextCursor: truncated && keys.length > 0 ? Buffer.from(keys[keys.length - 1]).toString('base64url') : null,
    };
  }

  /** Appends an event after the last one (whoever wrote it) and returns its seq. */
  async appendEvent(id: string, event: PredictionEvent): Promise<number> {
    let seq = this.nextSeq.get(id) ?? (await this.lastSeq(id)) + 1;
    for (;;) {
      try {
        await this.blobs.putIfAbsent(eventKey(id, seq), JSON.stringify(event), JSON_TYPE);
        break;
      } catch (e) {
        if (!(e instanceof PreconditionFailedError)) throw e;
        seq = (await this.lastSeq(id)) + 1; // another writer took it
      }
    }
    if (event.type === 'done') this.nextSeq.delete(id);
    else this.nextSeq.set(id, seq + 1);
    return seq;
  }

  /** Events with seq > afterSeq, in order; stops at the first gap (a write still in flight). */
  async readEvents(id: string, afterSeq = -1, opts: { limit?: number } = {}): Promise<SequencedEvent[]> {
    const { keys } = await this.blobs.list(eventsPrefix(id), { startAfter: afterSeq >= 0 ? eventKey(id, afterSeq) : undefined, limit: opts.limit });
    const bodies = await Promise.all(keys.map((k) => this.blobs.get(k)));
    const events: SequencedEvent[] = [];
    for (let i = 0; i < keys.length; i++) {
      const seq = seqOf(keys[i]);
      if (seq !== afterSeq + 1 + i) break;
      events.push({ seq, event: JSON.parse(new TextDecoder().decode(bodies[i])) as PredictionEvent });
    }
    return events;
  }

  private async lastSeq(id: string): Promise<number> {
    const { keys } = await this.blobs.list(eventsPrefix(id));
    return keys.length === 0 ? -1 : seqOf(keys[keys.length - 1]);
  }
}

/** The record with this write's id added to its latest 8: no two writes store the same bytes (see S3BlobStore's conditional writes). */
const withRevision = (record: PredictionRecord, revision: string): PredictionRecord => ({ ...record, revisions: [...(record.revisions ?? []).slice(-7), revision] });

function checkUpdate(from: PredictionRecord, to: PredictionRecord): void {
  if (TERMINAL.has(from.status)) throw new InvalidTransitionError(from.id, from.status, to.status, `is ${from.status}: a finished prediction never changes`);
  for (const field of FIXED_FIELDS) {
    if (from[field] !== to[field]) throw new InvalidTransitionError(from.id, from.status, to.status, `${field} cannot change`);
  }
  if (from.status !== to.status && !TRANSITIONS[from.status].includes(to.status)) throw new InvalidTransitionError(from.id, from.status, to.status);
}

/** `owners/{owner}/{13 digits}-{id}` → id (ids may contain '-'). */
const idOfOwnerKey = (key: string) => key.slice(key.lastIndexOf('/') + 1 + 14);
const seqOf = (key: string) => Number(key.slice(key.lastIndexOf('/') + 1, -'.json'.length));

function decodeCursor(cursor: string, prefix: string): string {
  const key = Buffer.from(cursor, 'base64url').toString();
  if (!key.startsWith(prefix)) throw new InvalidCursorError();
  return key;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
