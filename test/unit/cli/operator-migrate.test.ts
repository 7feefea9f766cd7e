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

t.test("the operator's probe port answers while it migrates: alive, not ready; and is free again after", async (t) => {
  const port = await freePort();
  let finish = () => undefined as void;
  const migrating = migrateAlive({ port, host: '127.0.0.1' }, () => new Promise<void>((resolve) => (finish = resolve)));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'alive: the kubelet does not restart it midway');
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503, 'not ready');
  finish();
  await migrating;
  const again = createServer();
  await new Promise<void>((resolve, reject) => again.once('error', reject).listen(port, '127.0.0.1', resolve));
  t.pass('the port is free for the operator');
  await new Promise((resolve) => again.close(resolve));

  await t.rejects(
    migrateAlive({ port, host: '127.0.0.1' }, () => Promise.reject(new Error('migration failed'))),
    /migration failed/,
    'a failed migration fails, and frees the port',
  );
  t.equal(await migrateAlive(undefined, async () => undefined), undefined, 'no probe port: just the migration');
});
