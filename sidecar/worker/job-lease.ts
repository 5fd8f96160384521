import { leaseKey, type LeaseBody } from '../../contract/lease.ts';
import { PreconditionFailedError, type S3BlobStore } from '../../contract/s3-blob-store.ts';

export { leaseKey };

/**
 * Who runs a prediction now: `predictions/{id}/lease.json` = {holder, expiresAt}. SQS may hand one
 * message to two workers (at-least-once), and a crashed worker's message comes back: the lease
 * lets exactly one run proceed, and passes to another worker only once the holder stopped renewing.
 * Taken with If-None-Match: * (free) or If-Match on an expired lease (takeover); renewed with If-Match.
 */
export interface Lease {
  readonly holder: string;
  /** Pushes the expiry out; false when another worker took the lease meanwhile. */
  renew(): Promise<boolean>;
  /** Frees it at once for the next try (a no-op if another worker took it). */
  release(): Promise<void>;
}

export class JobLeases {
  constructor(
    readonly blobs: S3BlobStore,
    readonly ttlMs: number,
  ) {}

  /**
   * The lease, or null while another holder's lease is live, unless `mayTakeOver` says that holder
   * is known to have stopped (this worker's own earlier run, whose release did not reach S3).
   */
  async acquire(predictionId: string, holder: string, mayTakeOver: (holder: string) => boolean = () => false): Promise<Lease | null> {
    const key = leaseKey(predictionId);
    const current = await this.blobs.getWithEtag(key);
    let etag: string;
    try {
      if (!current) etag = await this.blobs.putIfAbsent(key, this.body(holder), 'application/json');
      else {
        const live = JSON.parse(new TextDecoder().decode(current.body)) as LeaseBody;
        if (live.expiresAt > Date.now() && !mayTakeOver(live.holder)) return null;
        etag = await this.blobs.putIfMatch(key, this.body(holder), 'application/json', current.etag);
      }
    } catch (e) {
      if (e instanceof PreconditionFailedError) return null; // another worker got there first
      throw e;
    }
    return this.lease(key, holder, etag);
  }

  private lease(key: string, holder: string, etag: string): Lease {
    let held = true;
    return {
      holder,
      renew: async () => {
        if (!held) return false;
        try {
          etag = await this.blobs.putIfMatch(key, this.body(holder), 'application/json', etag);
          return true;
        } catch (e) {
          if (e instanceof PreconditionFailedError) return (held = false);
          throw e;
        }
      },
      release: async () => {
        if (!held) return;
        held = false;
        try {
          // expire it rather than delete it: a delete is not conditional, and might remove a successor's lease
          await this.blobs.putIfMatch(key, JSON.stringify({ holder, expiresAt: 0 } satisfies LeaseBody), 'application/json', etag);
        } catch (e) {
          if (!(e instanceof PreconditionFailedError)) throw e;
        }
      },
    };
  }

  private body(holder: string): string {
    return JSON.stringify({ holder, expiresAt: Date.now() + this.ttlMs } satisfies LeaseBody);
  }
}
