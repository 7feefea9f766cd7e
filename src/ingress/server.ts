/**
 * Serving the ingress app over HTTP, and stopping it gracefully: report not ready, stop accepting,
 * let requests in flight finish (bounded), then close idle and remaining connections.
 */
import { createServer, type Server } from 'node:http';
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

export async function serveIngress(app: IngressApp, options: { port: number; host?: string; log: Logger }): Promise<RunningIngress> {
  const server = createServer(app.koa.callback());
  // Longer than common load-balancer idle timeouts, so the balancer closes first, never us mid-request.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  let closing: Promise<void> | undefined;
  return {
    server,
    port: address.port,
    url: `http://${host}:${address.port}`,
    close({ drainDelayMs = 0, graceMs = 10_000 } = {}) {
      closing ??= (async () => {
        app.readiness.markShuttingDown();
        if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => {
          options.log.warn({ graceMs }, 'Requests still in flight after the grace period; closing their connections');
          server.closeAllConnections();
        }, graceMs);
        await closed;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
