import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the Hugging Face Hub on 127.0.0.1, in the Hub's URL layout, for the two calls
 * @huggingface/hub makes to download a repo: the tree listing
 *   GET /api/models/<owner>/<name>/tree/<rev>?recursive=true  → [{type, path, size, oid, lfs?}]
 * and file contents with Range support
 *   GET /<owner>/<name>/resolve/<rev>/<path>.
 * It requires a bearer token (a gated repo), can cut one response short (a dropped connection) or
 * hold a file's responses back (a download in flight), and records every request's method, path
 * and Range header.
 */
export interface FakeHubFile {
  content: Buffer;
  /** Stored with LFS: listed with its sha256; otherwise with its git blob sha1. */
  lfs: boolean;
  /** Served instead of `content` (the listing keeps content's size and hash): a corrupted upload. */
  served?: Buffer;
}

export interface FakeHub {
  url: string;
  requests: { method: string; path: string; range: string | undefined }[];
  /** The next full or ranged body of `path` stops after this many bytes, and the socket is destroyed. */
  cutNext(path: string, bytes: number): void;
  /** Requests for `path` wait (arrived resolves at the first) until release(). */
  hold(path: string): { arrived: Promise<void>; release(): void };
  close(): Promise<void>;
}

export async function startFakeHub(repo: string, files: Record<string, FakeHubFile>, token: string): Promise<FakeHub> {
  const requests: FakeHub['requests'] = [];
  const cuts = new Map<string, number>();
  const holds = new Map<string, { arrive: () => void; released: Promise<void> }>();
  const gitSha1 = (b: Buffer) => crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
  const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://hub');
    requests.push({ method: req.method!, path: url.pathname, range: req.headers.range });
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Access to this gated repo requires a token' }));
      return;
    }
    const tree = `/api/models/${repo}/tree/main`;
    if (url.pathname === tree) {
      const listing = Object.entries(files).map(([path, f]) => ({
        type: 'file',
        path,
        size: f.content.length,
        oid: gitSha1(f.content),
        ...(f.lfs ? { lfs: { oid: sha256(f.content), size: f.content.length, pointerSize: 134 } } : {}),
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(listing));
      return;
    }
    const prefix = `/${repo}/resolve/main/`;
    const file = url.pathname.startsWith(prefix) ? files[decodeURIComponent(url.pathname.slice(prefix.length))] : undefined;
    if (!file) {
      res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' }).end();
      return;
    }
    const name = url.pathname.slice(prefix.length);
    const held = holds.get(name);
    if (held) {
      held.arrive();
      await held.released;
      if (res.destroyed) return; // the client went away meanwhile
    }
    const body = file.served ?? file.content;
    const etag = `"${sha256(file.content)}"`;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = body.length - 1;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end - start + 1, etag, 'accept-ranges': 'bytes' });
    } else {
      res.writeHead(200, { 'content-length': body.length, etag, 'accept-ranges': 'bytes' });
    }
    const slice = body.subarray(start, end + 1);
    const cut = cuts.get(name);
    if (cut !== undefined && slice.length > 1) {
      cuts.delete(name);
      res.write(slice.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    cutNext: (path, bytes) => cuts.set(path, bytes),
    hold(path) {
      let arrive!: () => void;
      let release!: () => void;
      const arrived = new Promise<void>((resolve) => (arrive = resolve));
      holds.set(path, { arrive, released: new Promise<void>((resolve) => (release = resolve)) });
      return {
        arrived,
        release: () => {
          holds.delete(path);
          release();
        },
      };
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
