import { timingSafeEqual } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

/**
 * Checks a presigned S3 URL as S3 does: the same SDK presigner that made it (SigV4, with the local
 * credentials) signs the request again from what it asks for — method, host, key, the signed
 * Content-Type, signing time and expiry — and the URL must match it parameter for parameter. So a
 * changed signature, a dropped or added parameter (`?acl`, `?prefix=`), another method, another
 * content type or a key other than the signed one are all refused; no crypto is written here.
 */
export interface PresignedRequest {
  method: 'GET' | 'PUT';
  /** The URL as received (its host is part of the signature). */
  url: URL;
  bucket: string;
  /** Decoded. */
  key: string;
  /** The request's Content-Type header (a PUT's is signed when the URL says so). */
  contentType?: string;
}

export type PresignCheck = { ok: true; signedHeaders: string[] } | { ok: false; reason: string };

const MAX_EXPIRES = 7 * 24 * 3600; // S3's own limit for SigV4
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

export async function checkPresigned(req: PresignedRequest, signer: (origin: string) => S3Client, opts: { accessKeyId: string; now?: number }): Promise<PresignCheck> {
  const q = req.url.searchParams;
  for (const name of ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature']) {
    if (q.getAll(name).length !== 1) return { ok: false, reason: `the URL is not presigned (${name})` };
  }
  if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return { ok: false, reason: 'only AWS4-HMAC-SHA256 is accepted' };
  if (q.get('X-Amz-Credential')!.split('/')[0] !== opts.accessKeyId) return { ok: false, reason: 'The AWS Access Key Id you provided does not exist in our records.' };
  const date = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(q.get('X-Amz-Date')!);
  const expires = Number(q.get('X-Amz-Expires'));
  if (!date || !Number.isInteger(expires) || expires < 1 || expires > MAX_EXPIRES) return { ok: false, reason: 'X-Amz-Date or X-Amz-Expires is malformed' };
  const signedAt = Date.UTC(+date[1], +date[2] - 1, +date[3], +date[4], +date[5], +date[6]);
  const now = opts.now ?? Date.now();
  if (now >= signedAt + expires * 1000) return { ok: false, reason: 'Request has expired' };
  if (signedAt > now + MAX_CLOCK_SKEW_MS) return { ok: false, reason: 'Request is not yet valid' };

  const signedHeaders = q.get('X-Amz-SignedHeaders')!.split(';');
  const signableHeaders = signedHeaders.includes('content-type') ? new Set(['content-type']) : undefined;
  const command =
    req.method === 'GET'
      ? new GetObjectCommand({ Bucket: req.bucket, Key: req.key })
      : new PutObjectCommand({ Bucket: req.bucket, Key: req.key, ContentType: req.contentType });
  const expected = new URL(await getSignedUrl(signer(req.url.origin), command, { expiresIn: expires, signingDate: new Date(signedAt), signableHeaders }));
  if (expected.pathname !== req.url.pathname) return { ok: false, reason: 'the URL is not signed for this key' };
  const given = [...q.entries()].filter(([k]) => k !== 'X-Amz-Signature').sort();
  const wanted = [...expected.searchParams.entries()].filter(([k]) => k !== 'X-Amz-Signature').sort();
  if (JSON.stringify(given) !== JSON.stringify(wanted)) return { ok: false, reason: 'The request signature we calculated does not match the signature you provided.' };
  const a = Buffer.from(q.get('X-Amz-Signature')!);
  const b = Buffer.from(expected.searchParams.get('X-Amz-Signature')!);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return { ok: false, reason: 'The request signature we calculated does not match the signature you provided.' };
  return { ok: true, signedHeaders };
}
