import http from 'node:http';
import https from 'node:https';
import sharp, { type Metadata } from 'sharp';
import type { BlobHead } from '../../contract/s3-blob-store.ts';
import { AddressRefusedError, checkUrl, guardedLookup, type AddressPolicy } from '../../contract/address-policy.ts';
import { ApiError } from './errors.ts';

/**
 * An image input as a caller gives it — an https URL, a `data:` URI, or the id of an upload
 * (POST /v1/uploads) — turned into the file's bytes, within limits on bytes, pixels, time and
 * redirects. Pixel counts are read from the header (sharp metadata) before anything is decoded.
 */
export interface ImageLimits {
  maxBytes: number;
  /** sharp's limitInputPixels: width × height of the stored image. */
  maxPixels: number;
  timeoutMs: number;
  maxRedirects: number;
}

export interface ImageSources {
  policy: AddressPolicy;
  limits: ImageLimits;
  /** Upload objects: `uploads/{owner}/{upload_id}`. */
  store: { head(key: string): Promise<BlobHead | undefined>; get(key: string): Promise<Uint8Array> };
  owner: string;
}

export const UPLOAD_ID = /^up_[0-9a-z]{26}$/;

export function uploadKey(owner: string, uploadId: string): string {
  return `uploads/${owner}/${uploadId}`;
}

/** The bytes of one image input; `param` names it in errors (`input.images[1]`). */
export async function resolveImage(ref: string, src: ImageSources, param: string): Promise<Uint8Array> {
  const bytes = ref.startsWith('data:')
    ? decodeDataUri(ref, src.limits, param)
    : UPLOAD_ID.test(ref)
      ? await readUpload(ref, src, param)
      : await fetchImageUrl(ref, src.policy, src.limits, param);
  await checkPixels(bytes, src.limits, param);
  return bytes;
}

function decodeDataUri(uri: string, limits: ImageLimits, param: string): Uint8Array {
  const m = /^data:([\w.+-]+\/[\w.+-]+)?((?:;[\w-]+=[\w.-]+)*);base64,/i.exec(uri);
  if (!m) throw new ApiError(422, 'invalid_image', 'a data URI image must be base64 encoded (data:image/png;base64,…)', param);
  const payload = uri.slice(m[0].length);
  if (payload.length > Math.ceil(limits.maxBytes / 3) * 4 + 4) throw tooLarge(param, limits);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payload)) throw new ApiError(422, 'invalid_image', 'the data URI is not valid base64', param);
  return new Uint8Array(Buffer.from(payload, 'base64'));
}

async function readUpload(uploadId: string, src: ImageSources, param: string): Promise<Uint8Array> {
  const key = uploadKey(src.owner, uploadId);
  const head = await src.store.head(key);
  if (!head) throw new ApiError(422, 'unknown_upload', `no upload ${uploadId} (uploads are per API key and must be PUT before use)`, param);
  // a presigned PUT cannot bound the size it accepts, so the bound is enforced here, before reading
  if (head.size > src.limits.maxBytes) throw tooLarge(param, src.limits);
  return src.store.get(key);
}

/** GETs an image URL: every hop's scheme and resolved addresses checked, redirects followed by hand. */
export async function fetchImageUrl(raw: string, policy: AddressPolicy, limits: ImageLimits, param: string): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  let url: URL;
  try {
    url = checkUrl(raw, policy);
    for (let hop = 0; ; hop++) {
      const res = await get(url, policy, signal);
      if ([301, 302, 303, 307, 308].includes(res.statusCode ?? 0)) {
        res.resume();
        if (hop >= limits.maxRedirects) throw new ApiError(422, 'image_fetch_failed', `more than ${limits.maxRedirects} redirects from ${raw}`, param);
        const location = res.headers.location;
        if (!location) throw new ApiError(422, 'image_fetch_failed', `redirect without a Location from ${url.href}`, param);
        url = checkUrl(new URL(location, url), policy);
        continue;
      }
      if (res.statusCode !== 200) {
        res.resume();
        throw new ApiError(422, 'image_fetch_failed', `GET ${url.href} answered ${res.statusCode}`, param);
      }
      return await readBody(res, limits, param);
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (e instanceof AddressRefusedError) throw new ApiError(422, 'image_url_refused', `image URL refused: ${e.message}`, param);
    if (signal.aborted) throw new ApiError(422, 'image_fetch_failed', `fetching ${raw} took longer than ${limits.timeoutMs} ms`, param);
    const err = e as NodeJS.ErrnoException;
    throw new ApiError(422, 'image_fetch_failed', `cannot fetch ${raw}: ${err.code ?? err.message}`, param);
  }
}

function get(url: URL, policy: AddressPolicy, signal: AbortSignal): Promise<http.IncomingMessage> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { lookup: guardedLookup(policy) as never, signal, headers: { accept: 'image/*' } }, resolve);
    req.on('error', reject);
  });
}

async function readBody(res: http.IncomingMessage, limits: ImageLimits, param: string): Promise<Uint8Array> {
  const declared = Number(res.headers['content-length']);
  if (declared > limits.maxBytes) {
    res.destroy();
    throw tooLarge(param, limits);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limits.maxBytes) {
      res.destroy();
      throw tooLarge(param, limits);
    }
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

async function checkPixels(bytes: Uint8Array, limits: ImageLimits, param: string): Promise<void> {
  if (bytes.length > limits.maxBytes) throw tooLarge(param, limits);
  let meta: Metadata;
  try {
    // the header only, with sharp's own pixel limit off: the limit that counts is the one decoding
    // uses (limits.maxPixels, the processor's limitInputPixels), and over sharp's default it would say
    // "undecodable" (415) for what is only too large
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new ApiError(415, 'unsupported_image', `not an image any decoder here reads: ${(e as Error).message}`, param);
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > limits.maxPixels) {
    throw new ApiError(413, 'image_too_large', `the image is ${meta.width}×${meta.height} = ${pixels} pixels; the limit is ${limits.maxPixels}`, param);
  }
}

function tooLarge(param: string, limits: ImageLimits): ApiError {
  return new ApiError(413, 'image_too_large', `the image is larger than ${limits.maxBytes} bytes`, param);
}
