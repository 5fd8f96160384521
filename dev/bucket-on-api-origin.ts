import { createS3Client, type S3Settings } from '../contract/s3.ts';
import { S3BlobStore } from '../contract/s3-blob-store.ts';
import type { ApiDeps } from '../functions/api/deps.ts';

/**
 * Locally, the bucket is also reachable on the API's own origin: requests for `/{bucket}` and
 * `/{bucket}/…` (path-style S3) are passed to the local S3 server, and presigned URLs are made
 * for that origin. So the URLs the API hands out (outputs, previews, upload PUTs) are on the same
 * origin as the API and the playground page: a browser needs no CORS, and the page makes no
 * request to any other origin. (On AWS the URLs point at S3 itself.) The local S3 server does not
 * check the signature's host, only that the request is signed (dev/conditional-s3-front.ts).
 */
type Fetch = (request: Request) => Response | Promise<Response>;

// hop-by-hop headers (RFC 9110 §7.6.1) and what fetch recomputes itself
const DROP_REQUEST = ['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'];
const DROP_RESPONSE = ['connection', 'keep-alive', 'transfer-encoding'];

/** A fetch handler: bucket paths go to `s3Endpoint`, everything else to `next` (the API). */
export function bucketOnOrigin(bucket: string, s3Endpoint: string, next: Fetch): Fetch {
  const prefix = `/${bucket}`;
  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) return next(request);
    const headers = new Headers(request.headers);
    for (const h of DROP_REQUEST) headers.delete(h);
    const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
    const upstream = await fetch(`${s3Endpoint}${url.pathname}${url.search}`, {
      method: request.method,
      headers,
      body: hasBody ? request.body : undefined,
      redirect: 'manual',
      ...(hasBody ? { duplex: 'half' } : {}),
    } as RequestInit);
    const out = new Headers(upstream.headers);
    for (const h of DROP_RESPONSE) out.delete(h);
    return new Response(upstream.body, { status: upstream.status, headers: out });
  };
}

/**
 * The API's store with presigned URLs on `origin`; every other call still goes straight to the
 * S3 server. Presigning makes no request, so the second client only formats URLs.
 */
export function presignOnOrigin(store: ApiDeps['store'], s3: S3Settings, origin: string): ApiDeps['store'] {
  const onOrigin = new S3BlobStore(createS3Client({ ...s3, endpoint: origin }), s3.bucket);
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
