import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3ServiceException,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobStore } from './blob-store.ts';

/** The key does not exist. */
export class BlobNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`no object at ${key}`);
    this.name = 'BlobNotFoundError';
  }
}

/** A conditional write lost: the object exists (If-None-Match) or changed since it was read (If-Match). */
export class PreconditionFailedError extends Error {
  constructor(readonly key: string) {
    super(`conditional write to ${key} failed: the object exists or changed`);
    this.name = 'PreconditionFailedError';
  }
}

export interface StoredBlob {
  body: Uint8Array;
  /** Quoted, as S3 sends it; pass it back unchanged to putIfMatch. */
  etag: string;
  contentType?: string;
}

export interface BlobHead {
  size: number;
  etag: string;
  contentType?: string;
}

export interface PresignedUrl {
  url: string;
  /** ISO 8601: the URL stops working then. */
  expiresAt: string;
}

export const DEFAULT_URL_EXPIRY_SECONDS = 3600;

/** The BlobStore on one S3 bucket, plus what only S3 offers: conditional writes, listing, presigned URLs. */
export class S3BlobStore implements BlobStore {
  constructor(
    readonly s3: S3Client,
    readonly bucket: string,
  ) {}

  async get(key: string): Promise<Uint8Array> {
    const blob = await this.getWithEtag(key);
    if (!blob) throw new BlobNotFoundError(key);
    return blob.body;
  }

  /** The object and its ETag, or undefined when there is none. */
  async getWithEtag(key: string): Promise<StoredBlob | undefined> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const body = await out.Body!.transformToByteArray();
      return { body, etag: out.ETag!, contentType: out.ContentType };
    } catch (e) {
      if (isStatus(e, 404)) return undefined;
      throw e;
    }
  }

  async head(key: string): Promise<BlobHead | undefined> {
    try {
      const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, etag: out.ETag!, contentType: out.ContentType };
    } catch (e) {
      if (isStatus(e, 404)) return undefined;
      throw e;
    }
  }

  async put(key: string, body: Uint8Array | string, contentType: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  /** Creates the object only if the key is free (If-None-Match: *); returns its ETag. */
  async putIfAbsent(key: string, body: Uint8Array | string, contentType: string): Promise<string> {
    return this.conditionalPut(key, body, contentType, { IfNoneMatch: '*' });
  }

  /** Replaces the object only if it still has `etag` (If-Match); returns the new ETag. */
  async putIfMatch(key: string, body: Uint8Array | string, contentType: string, etag: string): Promise<string> {
    return this.conditionalPut(key, body, contentType, { IfMatch: etag });
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /**
   * Keys under `prefix` in key order, after `startAfter`; `truncated` when more follow. ListObjects
   * (v1) with Marker = the last key seen: v2's continuation tokens break s3rver on Node ≥ 17 (it
   * makes them with DES, which OpenSSL 3 no longer offers), and a marker works the same on AWS.
   */
  async list(prefix: string, opts: { startAfter?: string; limit?: number } = {}): Promise<{ keys: string[]; truncated: boolean }> {
    const keys: string[] = [];
    const limit = opts.limit ?? Infinity;
    let marker = opts.startAfter;
    for (;;) {
      const out = await this.s3.send(
        new ListObjectsCommand({ Bucket: this.bucket, Prefix: prefix, Marker: marker, MaxKeys: Math.min(1000, limit - keys.length) }),
      );
      keys.push(...(out.Contents ?? []).map((c) => c.Key!));
      if (!out.IsTruncated || keys.length === 0) return { keys, truncated: false };
      if (keys.length >= limit) return { keys, truncated: true };
      marker = keys[keys.length - 1];
    }
  }

  /** A GET URL anyone can use until it expires: the only way outputs leave the private bucket. */
  presignGet(key: string, expiresInSeconds = DEFAULT_URL_EXPIRY_SECONDS): Promise<PresignedUrl> {
    return this.presign(new GetObjectCommand({ Bucket: this.bucket, Key: key }), expiresInSeconds);
  }

  /**
   * A PUT URL for one upload straight to the bucket. The content type, when given, is signed:
   * the client must send that exact Content-Type header.
   */
  presignPut(key: string, opts: { contentType?: string; expiresInSeconds?: number } = {}): Promise<PresignedUrl> {
    const command = new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentType: opts.contentType });
    return this.presign(command, opts.expiresInSeconds ?? DEFAULT_URL_EXPIRY_SECONDS, opts.contentType ? new Set(['content-type']) : undefined);
  }

  /**
   * A presigned URL states its signing time in whole seconds (X-Amz-Date) and expires counted from
   * there: signed at a whole second, its expiresAt is exact (signed now, it would expire up to a
   * second before now + expiresIn).
   */
  private async presign(command: GetObjectCommand | PutObjectCommand, expiresIn: number, signableHeaders?: Set<string>): Promise<PresignedUrl> {
    const signingDate = new Date(Math.floor(Date.now() / 1000) * 1000);
    const url = await getSignedUrl(this.s3, command, { expiresIn, signingDate, signableHeaders });
    return { url, expiresAt: new Date(signingDate.getTime() + expiresIn * 1000).toISOString() };
  }

  private async conditionalPut(
    key: string,
    body: Uint8Array | string,
    contentType: string,
    condition: { IfNoneMatch: string } | { IfMatch: string },
  ): Promise<string> {
    try {
      const out = await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType, ...condition }));
      return out.ETag!;
    } catch (e) {
      // 409 ConditionalRequestConflict: AWS's answer when a concurrent conditional write is in flight;
      // 404 NoSuchKey: If-Match on an object that is gone
      const refused = isStatus(e, 412) || isStatus(e, 409) || isStatus(e, 404);
      // A write can land while its answer is lost (a 500 after the write, a dropped connection): the
      // SDK then retries, and the retry is refused because of the write itself. So when the SDK had
      // to retry, or the PUT failed otherwise, the object is read back: holding exactly our bytes, the
      // write was ours. (Callers that need to tell their write from an identical one make the bytes
      // unique: PredictionStore puts a fresh revision in every record it writes.)
      if (!refused || attemptsOf(e) > 1) {
        const landed = await this.getWithEtag(key).catch(() => undefined);
        if (landed && sameBytes(landed.body, body)) return landed.etag;
      }
      if (refused) throw new PreconditionFailedError(key);
      throw e;
    }
  }
}

/** How many times the SDK sent the request that ended in `e` (1 when it did not retry). */
const attemptsOf = (e: unknown): number => (e as { $metadata?: { attempts?: number } })?.$metadata?.attempts ?? 1;

function sameBytes(stored: Uint8Array, sent: Uint8Array | string): boolean {
  return Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength).equals(typeof sent === 'string' ? Buffer.from(sent) : sent);
}

function isStatus(e: unknown, status: number): boolean {
  return e instanceof S3ServiceException ? e.$metadata.httpStatusCode === status : (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === status;
}
