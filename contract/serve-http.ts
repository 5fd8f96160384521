import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

/** A fetch handler over real HTTP on Node: the API (local runs and tests; on AWS it is functions/lambda.ts) and the worker's health server. */
export interface ServedApi {
  /** http://HOST:PORT */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface ServeOptions {
  port?: number;
  hostname?: string;
  /**
   * Aborted by close() before the server closes: the app (ApiDeps.shutdown) then answers its waits
   * and ends its streams, and close() lets those answers go out (up to `drainMs`) before it cuts
   * what is left.
   */
  shutdown?: AbortController;
  drainMs?: number;
}

export function serveApi(app: { fetch: (request: Request) => Response | Promise<Response> }, opts: ServeOptions = {}): Promise<ServedApi> {
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
            const http = server as Server;
            if (!opts.shutdown) {
              http.close(() => done());
              http.closeAllConnections(); // open event streams would hold close() forever
              return;
            }
            opts.shutdown.abort();
            const cut = setTimeout(() => http.closeAllConnections(), opts.drainMs ?? 5000); // what did not end by then
            http.close(() => (clearTimeout(cut), done()));
            http.closeIdleConnections();
            // keep-alive connections go idle once their answer is out
            const idle = setInterval(() => http.closeIdleConnections(), 50);
            http.once('close', () => clearInterval(idle));
          }),
      });
    });
    server.once('error', failed);
    server.on('clientError', answerParserError);
  });
}

/**
 * What Node's HTTP parser refuses before the app sees it (headers too large, a malformed request
 * line) gets the API's JSON error shape too, instead of Node's bare status line.
 */
function answerParserError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
  const [status, reason, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'headers_too_large', 'the request headers are too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'request_timeout', 'the request took too long to arrive']
        : [400, 'Bad Request', 'malformed_request', `not a valid HTTP request (${err.code ?? err.message})`];
  const body = JSON.stringify({ error: { code, message, param: null } });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
