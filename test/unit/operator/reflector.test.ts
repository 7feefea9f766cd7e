/** The reflector against a local HTTP server that plays the API server's watch endpoint. */
import { createServer } from 'node:http';
import t from 'tap';
import { k8s } from '../../../src/adapters/kubernetes/client.js';
import { Reflector } from '../../../src/operator/reflector.js';
import { silentLogger } from '../../../src/log.js';

t.test('a watch that keeps failing with an ERROR event backs off instead of re-watching at once', async (t) => {
  let watches = 0;
  const server = createServer((req, res) => {
    watches++;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    // What an API server sends for, e.g., an internal error mid-watch.
    res.end(
      `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500, message: 'boom' } })}\n`,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromOptions({
    // Plain HTTP on loopback: the client allows it only with skipTLSVerify.
    clusters: [{ name: 'local', server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'local', cluster: 'local', user: 'nobody' }],
    currentContext: 'local',
  });
  const enqueued: string[] = [];
  const reflector = new Reflector({
    kubeConfig,
    source: {
      name: 'things',
      path: '/api/v1/things',
      list: async () => ({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '1' }, items: [{ metadata: { name: 'a' } }] }),
      keysOf: (object) => [object.metadata?.name ?? '?'],
    },
    enqueue: (key) => enqueued.push(key),
    log: silentLogger,
    resyncMs: 60_000,
  });
  reflector.start();
  await reflector.synced;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await reflector.stop();
  // Backoff 500 ms, then 1 s: two or three watches in 1.5 s (it spun to hundreds before).
  t.ok(watches >= 1 && watches <= 4, `${watches} watches in 1.5 s`);
  t.ok(enqueued.length >= 1 && enqueued.length <= 4, 'each retry relists (and enqueues what it lists)');
});
