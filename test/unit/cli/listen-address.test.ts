/**
 * The servers' default listen address: none given, they listen on Node's unspecified address — `::`
 * where IPv6 is available (dual-stack: IPv4 clients too), else `0.0.0.0` — so probes to a pod's
 * IPv6 address reach them on an IPv6-only cluster. An explicit host still binds that host alone.
 */
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { startProbeServer } from '../../../src/engine/http.js';
import type { IngressApp } from '../../../src/ingress/app.js';
import { serveIngress } from '../../../src/ingress/server.js';
import { silentLogger } from '../../../src/log.js';
import { parseOperatorFlags } from '../../../src/operator/flags.js';

/** The status of GET `path` on `host:port`, or the connection's error code. */
function get(host: string, port: number, path: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
}

function closing(t: { teardown: (fn: () => Promise<void>) => void }, server: Server): void {
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

/** Whether a server can listen on `host` (port 0: any free port). */
async function canListen(host: string): Promise<boolean> {
  const { createServer } = await import('node:net');
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, host, () => probe.close(() => resolve(true)));
  });
}

/**
 * Whether a server given no host listens on `::`. Node decides by trying to bind `::` (an IPv6
 * socket can be created), falling back to `0.0.0.0`: so does this. `::` binds even where `::1` is
 * absent — IPv6 disabled by sysctl in a container, say — so `::1` says nothing about it.
 */
const unspecifiedIsIpv6 = () => canListen('::');

/** Whether `::1` is there for IPv6 clients to connect to (the client-side checks are skipped without it). */
const hasIpv6Loopback = () => canListen('::1');

const probe = { registry: new Registry(), ready: () => true };

t.test('probe server: no host listens on every address, IPv4 and IPv6', async (t) => {
  const ipv6 = await unspecifiedIsIpv6();
  const loopback6 = await hasIpv6Loopback();
  for (const host of [undefined, '']) {
    const server = await startProbeServer({ port: 0, ...probe, ...(host === undefined ? {} : { host }) });
    closing(t, server);
    const { address, port } = server.address() as AddressInfo;
    t.equal(address, ipv6 ? '::' : '0.0.0.0', `host ${JSON.stringify(host)}: the unspecified address`);
    t.equal(await get('127.0.0.1', port, '/healthz'), 200, `host ${JSON.stringify(host)}: IPv4 clients`);
    if (ipv6 && loopback6) t.equal(await get('::1', port, '/healthz'), 200, `host ${JSON.stringify(host)}: IPv6 clients`);
  }
});

t.test('probe server: an explicit host binds that host alone', async (t) => {
  const server = await startProbeServer({ port: 0, ...probe, host: '127.0.0.1' });
  closing(t, server);
  const { address, port } = server.address() as AddressInfo;
  t.equal(address, '127.0.0.1');
  t.equal(await get('127.0.0.1', port, '/healthz'), 200);
  if (await hasIpv6Loopback()) t.equal(await get('::1', port, '/healthz'), 'ECONNREFUSED', 'not on IPv6');
});

t.test('operator: no --http-host leaves the probe server on every address; --http-host picks one', async (t) => {
  const defaults = { identity: 'host-1', leaseNamespace: 'sentinel', watchNamespace: '', httpPort: 0 };
  const ipv6 = await unspecifiedIsIpv6();
  for (const [argv, expected] of [
    [[], ipv6 ? '::' : '0.0.0.0'],
    [['--http-host=127.0.0.1'], '127.0.0.1'],
  ] as const) {
    const http = parseOperatorFlags(argv, defaults).settings.http;
    t.ok(http, argv.join(' '));
    const server = await startProbeServer({ port: 0, ...probe, ...(http?.host === undefined ? {} : { host: http.host }) });
    closing(t, server);
    t.equal((server.address() as AddressInfo).address, expected, argv.join(' ') || 'no flag');
  }
});

t.test('ingress: no host (the CLI without --host) listens on every address, and its URL is loopback', async (t) => {
  const app = {
    koa: { callback: () => (_req: unknown, res: { end: (body: string) => void }) => res.end('ok') },
    readiness: { markShuttingDown: () => undefined },
  } as unknown as IngressApp;
  const ipv6 = await unspecifiedIsIpv6();
  const loopback6 = await hasIpv6Loopback();
  const running = await serveIngress(app, { port: 0, log: silentLogger });
  t.teardown(() => running.close({ graceMs: 100 }));
  t.equal((running.server.address() as AddressInfo).address, ipv6 ? '::' : '0.0.0.0');
  t.equal(running.url, `http://127.0.0.1:${running.port}`, 'the logged URL is one a client can use');
  t.equal(await get('127.0.0.1', running.port, '/'), 200, 'IPv4 clients');
  if (ipv6 && loopback6) t.equal(await get('::1', running.port, '/'), 200, 'IPv6 clients');
});
