/**
 * Serving the ingress app over HTTP, and stopping it gracefully: report not ready, stop accepting,
 * let requests in flight finish (bounded), then close idle and remaining connections.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { IngressApp } from './app.js';

export interface RunningIngress {
  readonly server: Server;
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  /**
   * Graceful stop: readiness fails at once; after `drainDelayMs` (time for load balancers to
   * notice) the listener closes; requests in flight get up to `graceMs` to finish.
   */
  close(options?: { drainDelayMs?: number; graceMs?: number }): Promise<void>;
}

/**
 * The listen backlog when none is given. Node's default, 511, is overrun at a sale's opening: a
 * thousand buyers connecting in the same instant to a busy process fill the accept queue, and the
 * kernel drops the rest of their SYNs — each retried a second later (then 3 s, 7 s…). The kernel
 * caps the backlog at `net.core.somaxconn` (4096 on current kernels; a namespaced sysctl a pod
 * may raise).
 */
export const DEFAULT_LISTEN_BACKLOG = 4096;

/**
 * Longest a client may take to send one whole request, headers and body (ms); the largest body
 * is 16 kB. A client that sends part of a request and stalls is answered 408 and its connection
 * closed, instead of holding it for Node's default of five minutes.
 */
export const REQUEST_TIMEOUT_MS = 20_000;

export async function serveIngress(
  app: IngressApp,
  /** `host` absent or empty: every address (see `startProbeServer`). */
  options: { port: number; host?: string; backlog?: number; log: Logger; requestTimeoutMs?: number },
): Promise<RunningIngress> {
  const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  // The time a connection waits idle between requests is not counted here (since Node 18 these
  // timeouts run from a request's first byte), so they do not cut keep-alive connections short.
  // Node looks for requests past them every `connectionsCheckingInterval`.
  const server = createServer(
    { requestTimeout, headersTimeout: requestTimeout, connectionsCheckingInterval: Math.min(5_000, Math.ceil(requestTimeout / 4)) },
    app.koa.callback(),
  );
  // Longer than common load-balancer idle timeouts, so the balancer closes first, never us mid-request.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const host = options.host ? { host: options.host } : {};
    server.listen({ port: options.port, ...host, backlog: options.backlog ?? DEFAULT_LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host =
    address.address === '0.0.0.0' || address.address === '::'
      ? '127.0.0.1'
      : address.family === 'IPv6'
        ? `[${address.address}]`
        : address.address;
  let closing: Promise<void> | undefined;
  return {
    server,
    port: address.port,
    url: `http://${host}:${address.port}`,
    close({ drainDelayMs = 0, graceMs = 10_000 } = {}) {
      closing ??= (async () => {
        // Not ready from now on; the dependency checks' timer stops; and /healthz no longer fails
        // for a closed connection: the owner drains NATS and closes its clients after this close.
        app.readiness.markShuttingDown();
        // From the start of a close — its drain delay included — every response closes its
        // connection: keep-alive clients (a balancer's pooled connections among them) reconnect, to
        // a replica that is not going away, instead of sending this one requests until its listener
        // closes. The sweep below closes the connections that went idle meanwhile.
        server.on('request', (_req, res: ServerResponse) => res.setHeader('Connection', 'close'));
        if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // A connection whose response went out before `draining` was set turns idle: closed at the next sweep.
        server.closeIdleConnections();
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        const timer = setTimeout(() => {
          options.log.warn({ graceMs }, 'Requests still in flight after the grace period; closing their connections');
          server.closeAllConnections();
        }, graceMs);
        await closed;
        clearInterval(sweep);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
