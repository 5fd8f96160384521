import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The API over real HTTP on Node (local runs and tests); on AWS it is functions/lambda.ts instead. */
export interface ServedApi {
  /** http://HOST:PORT */
  url: string;
  port: number;
  close(): Promise<void>;
}

export function serveApi(app: { fetch: (request: Request) => Response | Promise<Response> }, opts: { port?: number; hostname?: string } = {}): Promise<ServedApi> {
  const hostname = opts.hostname ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    // a port in use (or not ours to bind) rejects with its reason; unhandled, the server's 'error'
    // event would crash the process, or leave this promise pending forever
    const failed = (e: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${hostname}:${opts.port ?? 0}: ${e.code ?? e.message}`, { cause: e }));
    const server = serve({ fetch: app.fetch, port: opts.port ?? 0, hostname }, (info: AddressInfo) => {
      server.off('error', failed);
      resolve({
        url: `http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${info.port}`,
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            (server as Server).close(() => done());
            (server as Server).closeAllConnections(); // open event streams would hold close() forever
          }),
      });
    });
    server.once('error', failed);
  });
}
