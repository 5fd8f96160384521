import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client, type S3Settings } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import type { ApiDeps } from '../functions/api/deps.ts';
import { DEFAULT_LIMITS } from '../functions/api/deps.ts';
import { UPLOAD_CONTENT_TYPES } from '../functions/api/schemas.ts';
import { objectKeyOf } from './bucket-key.ts';
import { checkPresigned } from './presigned-check.ts';

/**
 * Locally, the bucket is also reachable on the API's own origin (`/{bucket}/…`), and presigned URLs
 * are made for that origin: the page and every URL the API hands out share one origin (no CORS). (On
 * AWS the URLs point at S3 itself.) The local S3 server checks no signature, so this front is the
 * bucket's only guard here, and it lets through exactly what the service's URLs grant:
 *
 *   GET outputs/…                      with a URL the service presigned for that key (an output, a preview)
 *   PUT uploads/{owner}/up_…           with an upload URL, as the image type it was signed for
 *
 * Signatures are checked as S3 checks them (presigned-check.ts), with credentials that only this
 * process knows (not the local S3 server's well-known account, which anyone can sign with); expired
 * URLs are refused. Keys that could leave the bucket's directory are refused whatever their encoding
 * (bucket-key.ts). Everything served carries nosniff and a CSP without scripts, and what is not an
 * image comes as an attachment: nothing from the bucket can run as a page on the API's origin.
 */
type Fetch = (request: Request) => Response | Promise<Response>;

export interface OriginBucket {
  bucket: string;
  /** The service's own store: the front reads and writes through it once a request is verified. */
  store: S3BlobStore;
  /** What presignOnOrigin signs with. */
  signing: { accessKeyId: string; secretAccessKey: string };
  region: string;
  /** An upload's largest body (the API refuses larger images when they are used). */
  maxUploadBytes?: number;
}

const OUTPUT_KEY = /^outputs\/[0-9a-z]+\/[0-9A-Za-z._-]+$/;
const UPLOAD_KEY = /^uploads\/[0-9A-Za-z_-]+\/up_[0-9a-z]{26}$/;
/** Shown inline; anything else (SVG included: it can hold scripts) is an attachment. */
const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/avif']);
const SAFETY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; sandbox",
  'cross-origin-resource-policy': 'same-origin',
};

/** A fetch handler: bucket paths are answered here, everything else goes to `next` (the API). */
export function bucketOnOrigin(opts: OriginBucket, next: Fetch): Fetch {
  const prefix = `/${opts.bucket}`;
  const maxUploadBytes = opts.maxUploadBytes ?? DEFAULT_LIMITS.image.maxBytes;
  const signers = new Map<string, S3Client>();
  // one signing client per origin the URLs were made for (a host or two); a flood of made-up hosts only recycles it
  const signer = (origin: string) => {
    let client = signers.get(origin);
    if (!client) {
      if (signers.size >= 8) for (const [o, c] of signers) (c.destroy(), signers.delete(o));
      client = createS3Client({ bucket: opts.bucket, region: opts.region, endpoint: origin, credentials: opts.signing });
      signers.set(origin, client);
    }
    return client;
  };

  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) return next(request);
    const key = objectKeyOf(url.pathname, opts.bucket);
    if (url.pathname === prefix || url.pathname === `${prefix}/`) return s3Error(403, 'AccessDenied', 'Access Denied'); // the bucket itself: no listing
    if (key === null) return s3Error(400, 'InvalidKey', 'the key is not one this bucket can hold');
    const method = request.method;
    const contentType = request.headers.get('content-type') ?? undefined;
    const granted =
      (method === 'GET' && OUTPUT_KEY.test(key)) ||
      (method === 'PUT' && UPLOAD_KEY.test(key) && (UPLOAD_CONTENT_TYPES as readonly string[]).includes(contentType ?? ''));
    if (!granted) return s3Error(403, 'AccessDenied', 'Access Denied');
    const check = await checkPresigned({ method: method as 'GET' | 'PUT', url, bucket: opts.bucket, key, contentType }, signer, { accessKeyId: opts.signing.accessKeyId });
    if (!check.ok) return s3Error(403, 'AccessDenied', check.reason);
    if (method === 'PUT' && !check.signedHeaders.includes('content-type')) return s3Error(403, 'AccessDenied', 'an upload URL must sign its Content-Type');
    return method === 'GET' ? getObject(opts, key) : putObject(opts, key, contentType!, request, maxUploadBytes);
  };
}

async function getObject(opts: OriginBucket, key: string): Promise<Response> {
  let out;
  try {
    out = await opts.store.s3.send(new GetObjectCommand({ Bucket: opts.bucket, Key: key }));
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return s3Error(404, 'NoSuchKey', 'The specified key does not exist.');
    throw e;
  }
  const type = out.ContentType ?? 'application/octet-stream';
  const headers: Record<string, string> = { ...SAFETY_HEADERS, 'content-type': type };
  if (out.ContentLength !== undefined) headers['content-length'] = String(out.ContentLength);
  if (out.ETag) headers.etag = out.ETag;
  if (out.LastModified) headers['last-modified'] = out.LastModified.toUTCString();
  if (!INLINE_TYPES.has(type.split(';')[0].trim().toLowerCase())) headers['content-disposition'] = `attachment; filename="${key.slice(key.lastIndexOf('/') + 1)}"`;
  return new Response(out.Body!.transformToWebStream(), { status: 200, headers });
}

async function putObject(opts: OriginBucket, key: string, contentType: string, request: Request, maxBytes: number): Promise<Response> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) return s3Error(413, 'EntityTooLarge', `an upload is at most ${maxBytes} bytes`);
  const body = await readCapped(request, maxBytes);
  if (!body) return s3Error(413, 'EntityTooLarge', `an upload is at most ${maxBytes} bytes`);
  const out = await opts.store.s3.send(new PutObjectCommand({ Bucket: opts.bucket, Key: key, Body: body, ContentType: contentType }));
  return new Response(null, { status: 200, headers: { ...SAFETY_HEADERS, ...(out.ETag ? { etag: out.ETag } : {}) } });
}

/** The body, or null once it passes `max` bytes (a chunked body has no length to check first). */
async function readCapped(request: Request, max: number): Promise<Uint8Array | null> {
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function s3Error(status: number, code: string, message: string): Response {
  const escaped = message.replace(/[<>&]/g, (c) => `&#${c.charCodeAt(0)};`);
  return new Response(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${escaped}</Message></Error>`, {
    status,
    headers: { ...SAFETY_HEADERS, 'content-type': 'application/xml' },
  });
}

/**
 * The API's store with presigned URLs on `origin`, signed with `signing` (what bucketOnOrigin checks);
 * every other call still goes straight to the S3 server. Presigning makes no request.
 */
export function presignOnOrigin(store: ApiDeps['store'], s3: S3Settings, origin: string, signing: OriginBucket['signing']): ApiDeps['store'] {
  const onOrigin = new S3BlobStore(createS3Client({ ...s3, endpoint: origin, credentials: signing }), s3.bucket);
  return {
    get: (...a) => store.get(...a),
    put: (...a) => store.put(...a),
    head: (...a) => store.head(...a),
    getWithEtag: (...a) => store.getWithEtag(...a),
    putIfAbsent: (...a) => store.putIfAbsent(...a),
    putIfMatch: (...a) => store.putIfMatch(...a),
    delete: (...a) => store.delete(...a),
    presignGet: (...a) => onOrigin.presignGet(...a),
    presignPut: (...a) => onOrigin.presignPut(...a),
  };
}
