import { createServer } from 'node:net';
import t from 'tap';
import { migrateAlive } from '../../../src/cli/operator-command.js';

/** A port free on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Binds `port` on 127.0.0.1 (rejecting when it is taken), then closes it. */
async function bindAndClose(port: number): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  await new Promise((resolve) => server.close(resolve));
}

t.test("the operator's probe port answers while it migrates: alive, not ready; and is free again after", async (t) => {
  const port = await freePort();
  let finish = () => undefined as void;
  const migrating = migrateAlive({ port, host: '127.0.0.1' }, () => new Promise<void>((resolve) => (finish = resolve)));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'alive: the kubelet does not restart it midway');
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503, 'not ready');
  finish();
  await migrating;
  await bindAndClose(port);
  t.pass('the port is free for the operator');

  await t.rejects(
    migrateAlive({ port, host: '127.0.0.1' }, () => Promise.reject(new Error('migration failed'))),
    /migration failed/,
    'a failed migration fails',
  );
  await bindAndClose(port);
  t.pass('and frees the port');
  t.equal(await migrateAlive(undefined, async () => undefined), undefined, 'no probe port: just the migration');
});
