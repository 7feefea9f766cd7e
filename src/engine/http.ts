import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** Health, readiness and Prometheus metrics over plain HTTP, for engines and the operator. */
export function startProbeServer(options: {
  port: number;
  registry: Registry;
  ready: () => boolean | Promise<boolean>;
  /**
   * Listen address. Absent or empty: every address, Node's unspecified address — `::` where IPv6
   * is available (dual-stack: IPv4 too), else `0.0.0.0` — so a probe to the pod's IP reaches it on
   * IPv4, IPv6 and dual-stack clusters alike.
   */
  host?: string;
}): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    void (async () => {
      try {
        if (path === '/healthz') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        } else if (path === '/readyz') {
          const ready = await options.ready();
          res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
        } else if (path === '/metrics') {
          res.writeHead(200, { 'content-type': options.registry.contentType }).end(await options.registry.metrics());
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        }
      } catch (error) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error instanceof Error ? error.message : String(error)}\n`);
      }
    })();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, ...(options.host ? { host: options.host } : {}) }, () => resolve(server));
  });
}
