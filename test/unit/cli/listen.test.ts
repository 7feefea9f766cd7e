/**
 * A listen failure of a role's server — the port taken, a privileged port, an address the machine
 * does not have — is a ConfigError naming the address and the setting that chose it; any other
 * error passes through as it is. (test/unit/cli/start-up-errors.test.ts runs the roles.)
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { listenFailure, listening } from '../../../src/cli/listen.js';
import { ConfigError } from '../../../src/errors.js';

/** The error Node gives a server listening on `port` of `host` (whatever it is). */
async function listenError(port: number, host: string): Promise<unknown> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', resolve);
    server.listen(port, host, () => server.close(() => resolve(undefined)));
  });
}

t.test('a port taken', async (t) => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const { port } = holder.address() as AddressInfo;
  const error = await listenError(port, '127.0.0.1');
  t.same(
    listenFailure(error, 'the ingress', '--host and --port'),
    new ConfigError(
      `the ingress cannot listen on 127.0.0.1:${port} (set by --host and --port): the address is already in use (EADDRINUSE)`,
    ),
  );
  await t.rejects(
    listening(Promise.reject(error), 'the ingress', '--port'),
    new ConfigError(`the ingress cannot listen on 127.0.0.1:${port} (set by --port): the address is already in use (EADDRINUSE)`),
  );
});

t.test('an address this machine does not have, IPv6 in brackets', async (t) => {
  // TEST-NET-1 and the IPv6 documentation prefix: never a local address.
  for (const [host, shown] of [
    ['192.0.2.1', '192.0.2.1'],
    ['2001:db8::1', '[2001:db8::1]'],
  ] as const) {
    const error = await listenError(8123, host);
    const code = (error as NodeJS.ErrnoException).code;
    // Where IPv6 is off entirely the error is another (EAFNOSUPPORT): not a failure the setting explains.
    if (code !== 'EADDRNOTAVAIL') {
      t.equal(listenFailure(error, 'the ingress', '--host'), undefined, `${host}: ${String(code)} passes through`);
      continue;
    }
    t.same(
      listenFailure(error, 'the ingress', '--host and --port'),
      new ConfigError(
        `the ingress cannot listen on ${shown}:8123 (set by --host and --port): this machine has no such address (EADDRNOTAVAIL)`,
      ),
    );
  }
});

t.test('a privileged port, and a cluster worker’s failure (syscall bind)', async (t) => {
  const denied = Object.assign(new Error('listen EACCES: permission denied 0.0.0.0:80'), {
    code: 'EACCES',
    syscall: 'listen',
    address: '0.0.0.0',
    port: 80,
  });
  t.same(
    listenFailure(denied, "the engine's health and metrics server", 'SENTINEL_HTTP_PORT'),
    new ConfigError(
      "the engine's health and metrics server cannot listen on 0.0.0.0:80 (set by SENTINEL_HTTP_PORT): permission denied (a port below 1024 needs privileges) (EACCES)",
    ),
  );
  // What a cluster worker gets (`--workers N`): its supervisor listened, and the error has no address.
  const worker = Object.assign(new Error('bind EADDRINUSE null:8080'), { code: 'EADDRINUSE', syscall: 'bind', address: null, port: 8080 });
  t.same(
    listenFailure(worker, 'the ingress', 'SENTINEL_INGRESS_PORT'),
    new ConfigError('the ingress cannot listen on port 8080 (set by SENTINEL_INGRESS_PORT): the address is already in use (EADDRINUSE)'),
  );
});

t.test('any other error passes through', async (t) => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', syscall: 'connect' });
  t.equal(listenFailure(refused, 'the ingress', '--port'), undefined);
  t.equal(listenFailure(new Error('boom'), 'the ingress', '--port'), undefined);
  t.equal(listenFailure('EADDRINUSE', 'the ingress', '--port'), undefined);
  await t.rejects(listening(Promise.reject(refused), 'the ingress', '--port'), refused);
  t.equal(await listening(Promise.resolve(42), 'the ingress', '--port'), 42);
});
