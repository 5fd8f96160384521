import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isSafeKey } from './bucket-key.ts';

/**
 * An HTTP front for an S3-compatible server that lacks conditional writes (s3rver 3.7.1 ignores
 * If-Match / If-None-Match on PutObject). It enforces them as S3 does, atomically per key, and
 * forwards everything else unchanged:
 *   PUT + If-None-Match: *     → 412 PreconditionFailed when the object exists
 *   PUT + If-Match: "<etag>"   → 412 when the object's ETag differs, 404 NoSuchKey when there is none
 * Atomic because every request on a key (reads, writes, deletes) passes through one
 * per-key queue here: the check and the write happen with no other write to that key between.
 * Requests must be signed (an Authorization header or a presigned query), as on a private bucket:
 * s3rver alone serves anonymous reads. (It still does not verify signatures; docs/service.md §7: this front
 * listens on loopback for the service's own clients, and the bucket on the API's origin is guarded by
 * bucket-on-api-origin.ts.) Keys that would leave s3rver's directory (`..` segments, however encoded) are refused.
 * It can be stopped and started again on the same port, to play an S3 outage, and it can lose the
 * answers to writes it made (loseWriteAnswers), to play a PUT that landed while its client saw an error.
 */
export interface S3Front {
  /** http://127.0.0.1:PORT: give this to S3 clients, never the upstream's address. */
  endpoint: string;
  port: number;
  /**
   * The next `count` PUTs that succeed upstream are answered 500 InternalError instead: the object is
   * written, and the client (whose SDK retries a 500) cannot tell. `meanwhile` runs before each such
   * answer, with the key free: a writer that comes between a write and its client's retry.
   */
  loseWriteAnswers(count: number, opts?: { meanwhile?: () => Promise<unknown> }): void;
  /** Refuses connections (and drops open ones) until start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
  readonly listening: boolean;
}

export async function startConditionalS3Front(opts: { upstream: string; host?: string; port?: number }): Promise<S3Front> {
  const upstream = new URL(opts.upstream);
  const host = opts.host ?? '127.0.0.1';
  const locks = new KeyLocks();
  let answersToLose = 0;
  let meanwhile: (() => Promise<unknown>) | undefined;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) s3Error(res, 502, 'BadGateway', `upstream S3 server: ${(e as Error).message}`);
      else res.destroy(e as Error);
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = url(req);
    if (!isSigned(req, u)) return s3Error(res, 403, 'AccessDenied', 'Access Denied');
    const objectKey = isObjectPath(u.pathname) ? u.pathname : undefined;
    // s3rver maps keys to files: one with a `..` segment, however encoded, would name a file outside its directory
    if (objectKey && !isSafeKey(safeDecode(objectKey.split('/').slice(2).join('/')))) return s3Error(res, 400, 'InvalidKey', 'the key is not one this bucket can hold');
    if (!objectKey) return void (await forward(req, res));

    // every request on one key waits its turn: s3rver writes objects in place, so a read alongside a write could see half of it
    let lost = false;
    await locks.run(objectKey, async () => {
      const ifMatch = req.headers['if-match'];
      const ifNoneMatch = req.headers['if-none-match'];
      if (req.method === 'PUT' && (ifMatch !== undefined || ifNoneMatch !== undefined)) {
        if (ifNoneMatch !== undefined && ifNoneMatch !== '*') return s3Error(res, 501, 'NotImplemented', 'If-None-Match on PUT supports only *');
        const etag = await currentEtag(objectKey);
        if (ifNoneMatch === '*' && etag !== undefined) return s3Error(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', 'If-None-Match');
        if (ifMatch !== undefined) {
          if (etag === undefined) return s3Error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
          if (bareEtag(ifMatch) !== bareEtag(etag)) return s3Error(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', 'If-Match');
        }
      }
      lost = (await forward(req, res, objectKey)) === 'lost';
    });
    if (lost) {
      await meanwhile?.();
      s3Error(res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
    }
  }

  /**
   * Pipes the request upstream and the answer back; resolves when the answer is fully sent. A PUT's
   * answer is held until the object reads back whole: s3rver answers before its file write has
   * finished (it does not wait for the write stream), so a read right after could see a truncated
   * object. Measured here: 1 read in 1,500 came back empty without this wait. Resolves 'lost' without
   * answering a write whose answer is to be lost (handle answers it once the key is free).
   */
  function forward(req: http.IncomingMessage, res: http.ServerResponse, objectKey?: string): Promise<'answered' | 'lost'> {
    return new Promise((resolve, reject) => {
      const up = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (upRes) => {
          const etag = upRes.headers.etag;
          const settle = objectKey && req.method === 'PUT' && upRes.statusCode === 200 && etag && !url(req).searchParams.has('uploadId')
            ? untilReadable(objectKey, etag)
            : Promise.resolve();
          settle.then(() => {
            if (objectKey && req.method === 'PUT' && upRes.statusCode === 200 && answersToLose > 0) {
              answersToLose--;
              upRes.resume();
              return upRes.on('end', () => resolve('lost'));
            }
            // a client that left (a dropped connection, the front stopped) must not hold its key's
            // lock: piping to its closed response would wait for a 'drain' that never comes
            if (res.destroyed) {
              upRes.destroy();
              return resolve('answered');
            }
            res.on('close', () => {
              if (res.writableFinished) return;
              upRes.destroy();
              resolve('answered');
            });
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
            upRes.on('end', () => resolve('answered'));
            upRes.on('error', reject);
          }, reject);
        },
      );
      up.on('error', reject);
      req.pipe(up);
    });
  }

  /** Waits until GET returns bytes whose MD5 is the ETag just given (single-part objects: ETag = MD5). */
  async function untilReadable(pathname: string, etag: string): Promise<void> {
    const want = bareEtag(etag);
    // up to about 10 s (it was 1 s): past this the client gets a 502 for a write that did land
    for (let attempt = 0; attempt < 2000; attempt++) {
      const body = await new Promise<Buffer>((resolve, reject) => {
        const r = http.request({ host: upstream.hostname, port: upstream.port, method: 'GET', path: pathname }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        });
        r.on('error', reject);
        r.end();
      });
      if (createHash('md5').update(body).digest('hex') === want) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`${pathname} did not read back as written`);
  }

  async function currentEtag(pathname: string): Promise<string | undefined> {
    const head = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const r = http.request({ host: upstream.hostname, port: upstream.port, method: 'HEAD', path: pathname, headers: {} }, resolve);
      r.on('error', reject);
      r.end();
    });
    head.resume();
    if (head.statusCode === 404) return undefined;
    if (head.statusCode !== 200) throw new Error(`HEAD ${pathname} answered ${head.statusCode}`);
    return head.headers.etag;
  }

  let port = opts.port ?? 0;
  let listening = false;
  const front: S3Front = {
    endpoint: '',
    port: 0,
    loseWriteAnswers(count, opts) {
      answersToLose = count;
      meanwhile = opts?.meanwhile;
    },
    get listening() {
      return listening;
    },
    async start() {
      if (listening) return;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      port = (server.address() as AddressInfo).port;
      front.port = port;
      front.endpoint = `http://${host}:${port}`;
      listening = true;
    },
    async stop() {
      if (!listening) return;
      listening = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
  await front.start();
  return front;
}

function isSigned(req: http.IncomingMessage, url: URL): boolean {
  return req.headers.authorization !== undefined || url.searchParams.has('X-Amz-Signature') || url.searchParams.has('Signature');
}

const url = (req: http.IncomingMessage) => new URL(req.url ?? '/', 'http://front');

/** `/bucket/key…`: an object, not a bucket or the service. */
function isObjectPath(pathname: string): boolean {
  const parts = pathname.split('/');
  return parts.length >= 3 && parts[1] !== '' && parts.slice(2).join('/') !== '';
}

const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return '';
  }
};

const bareEtag = (etag: string) => etag.replace(/^W\//, '').replace(/"/g, '').trim();

function s3Error(res: http.ServerResponse, status: number, code: string, message: string, condition?: string): void {
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message>${condition ? `<Condition>${condition}</Condition>` : ''}</Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** One task at a time per key, in arrival order. */
class KeyLocks {
  private tails = new Map<string, Promise<void>>();

  async run(key: string, task: () => Promise<void>): Promise<void> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const mine = before.then(task, task);
    const tail = mine.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      await mine;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
