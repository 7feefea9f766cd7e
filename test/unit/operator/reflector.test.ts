/** The reflector against a local HTTP server that plays the API server's watch endpoint. */
import { createServer, type RequestListener } from 'node:http';
import t, { type Test } from 'tap';
import { k8s } from '../../../src/adapters/kubernetes/client.js';
import { Reflector } from '../../../src/operator/reflector.js';
import { silentLogger } from '../../../src/log.js';

/**
 * Starts a local HTTP server that plays the API server (`handle` answers its watch requests), closed
 * with the test; returns a kubeconfig for it.
 */
async function playApiServer(t: Test, handle: RequestListener): Promise<k8s.KubeConfig> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromOptions({
    // Plain HTTP on loopback: the client allows it only with skipTLSVerify.
    clusters: [{ name: 'local', server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'local', cluster: 'local', user: 'nobody' }],
    currentContext: 'local',
  });
  return kubeConfig;
}

/**
 * Runs a reflector of `things` (the list holds `items`) against the played API server for 1.5 s,
 * and returns the keys it enqueued.
 */
async function reflectFor1500Ms(kubeConfig: k8s.KubeConfig, items: { metadata: { name: string } }[]): Promise<string[]> {
  const enqueued: string[] = [];
  const reflector = new Reflector({
    kubeConfig,
    source: {
      name: 'things',
      path: '/api/v1/things',
      list: async () => ({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '1' }, items }),
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
  return enqueued;
}

t.test('a watch that keeps failing with an ERROR event backs off instead of re-watching at once', async (t) => {
  let watches = 0;
  const kubeConfig = await playApiServer(t, (req, res) => {
    watches++;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    // What an API server sends for, e.g., an internal error mid-watch.
    res.end(
      `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500, message: 'boom' } })}\n`,
    );
  });
  const enqueued = await reflectFor1500Ms(kubeConfig, [{ metadata: { name: 'a' } }]);
  // Backoff 500 ms, then 1 s: two or three watches in 1.5 s (it spun to hundreds before).
  t.ok(watches >= 1 && watches <= 4, `${watches} watches in 1.5 s`);
  t.ok(enqueued.length >= 1 && enqueued.length <= 4, 'each retry relists (and enqueues what it lists)');
});

t.test('a watch that the server ends at once, cleanly, again and again, is re-opened with backoff, not in a loop', async (t) => {
  let watches = 0;
  const kubeConfig = await playApiServer(t, (req, res) => {
    watches++;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(); // a terminating API server, or a proxy, closing every watch as it opens
  });
  await reflectFor1500Ms(kubeConfig, []);
  // Pauses of 500 ms, then 1 s: two or three watches in 1.5 s.
  t.ok(watches >= 1 && watches <= 4, `${watches} watches in 1.5 s`);
});

t.test('a MODIFIED event that changes nothing relevantOf looks at (a status write) queues nothing', async (t) => {
  const object = (resourceVersion: string, generation: number, status: unknown) => ({
    metadata: { name: 'a', namespace: 'n', uid: 'u1', resourceVersion, generation },
    status,
  });
  const events = [
    { type: 'MODIFIED', object: object('2', 1, { sold: 1 }) }, // the status only: skipped
    { type: 'MODIFIED', object: object('3', 1, { sold: 2 }) }, // again
    { type: 'MODIFIED', object: object('4', 2, { sold: 2 }) }, // a spec change: queued
    { type: 'MODIFIED', object: object('5', 2, { sold: 3 }) }, // skipped
    { type: 'DELETED', object: object('6', 2, { sold: 3 }) }, // queued
    { type: 'ADDED', object: object('7', 2, { sold: 3 }) }, // recreated with the same relevant fields: queued
  ];
  let watches = 0;
  const kubeConfig = await playApiServer(t, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    // The events on the first watch; later watches stay open with nothing to say.
    if (watches++ === 0) res.end(events.map((event) => `${JSON.stringify(event)}\n`).join(''));
    else res.flushHeaders();
  });
  const enqueued: string[] = [];
  const reflector = new Reflector({
    kubeConfig,
    source: {
      name: 'things',
      path: '/api/v1/things',
      list: async () => ({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '1' }, items: [object('1', 1, { sold: 0 })] }),
      keysOf: (item) => [item.metadata?.name ?? '?'],
      relevantOf: ({ metadata }) => JSON.stringify([metadata?.uid, metadata?.generation]),
    },
    enqueue: (key) => enqueued.push(key),
    log: silentLogger,
    resyncMs: 60_000,
    watchTimeoutSeconds: 60,
  });
  reflector.start();
  await reflector.synced;
  const deadline = Date.now() + 5000;
  while (watches < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  await reflector.stop();
  t.equal(watches, 2, 'the events were all delivered (the reflector watches again after them)');
  t.same(enqueued, ['a', 'a', 'a', 'a'], 'the list, the spec change, the deletion and the re-creation; no status write');
});

t.test('with cache, the objects as last listed or watched — status writes included, deletions gone', async (t) => {
  const object = (name: string, resourceVersion: string, sold: number) => ({
    metadata: { name, namespace: 'n', uid: `u-${name}`, resourceVersion, generation: 1 },
    status: { sold },
  });
  const events = [
    { type: 'ADDED', object: object('b', '2', 0) },
    { type: 'MODIFIED', object: object('a', '3', 5) }, // skipped by relevantOf, yet kept
    { type: 'DELETED', object: object('b', '4', 0) },
    { type: 'ADDED', object: object('c', '5', 1) },
  ];
  let watches = 0;
  const kubeConfig = await playApiServer(t, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    if (watches++ === 0) res.end(events.map((event) => `${JSON.stringify(event)}\n`).join(''));
    else res.flushHeaders();
  });
  const source = (cache: boolean) => ({
    name: 'things',
    path: '/api/v1/things',
    list: async () => ({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '1' }, items: [object('a', '1', 0)] }),
    keysOf: (item: { metadata?: { name?: string } }) => [item.metadata?.name ?? '?'],
    relevantOf: ({ metadata }: { metadata?: { uid?: string; generation?: number } }) =>
      JSON.stringify([metadata?.uid, metadata?.generation]),
    cache,
  });
  const reflector = new Reflector({
    kubeConfig,
    source: source(true),
    enqueue: () => undefined,
    log: silentLogger,
    resyncMs: 60_000,
    watchTimeoutSeconds: 60,
  });
  t.throws(() => reflector.get('n', 'a'), /is not synced/, 'nothing to answer before the first list');
  t.equal(reflector.hasSynced, false);
  reflector.start();
  await reflector.synced;
  t.equal(reflector.hasSynced, true);
  const deadline = Date.now() + 5000;
  while (watches < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  await reflector.stop();
  t.match(reflector.get('n', 'a'), { metadata: { resourceVersion: '3' }, status: { sold: 5 } }, 'the last write, though it queued nothing');
  t.equal(reflector.get('n', 'b'), undefined, 'deleted');
  t.match(reflector.get('n', 'c'), { status: { sold: 1 } });
  t.equal(reflector.get('other', 'a'), undefined, 'by namespace and name');

  const keeping = new Reflector({ kubeConfig, source: source(false), enqueue: () => undefined, log: silentLogger, resyncMs: 60_000 });
  t.equal(keeping.caches, false);
  t.throws(() => keeping.get('n', 'a'), /keeps no cache/);
});

t.test('with cache: a relist after 410 Gone replaces the objects; a failed watch unsyncs the cache until a list succeeds', async (t) => {
  const object = (name: string) => ({ metadata: { name, namespace: 'n', uid: `u-${name}`, resourceVersion: '1' } });
  let watches = 0;
  let lists = 0;
  const kubeConfig = await playApiServer(t, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    watches++;
    // First watch: expired (410), so the reflector relists. Second: a failure (500). Later ones: silent.
    if (watches === 1) res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old' } })}\n`);
    else if (watches === 2) res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 500, message: 'boom' } })}\n`);
    else res.flushHeaders();
  });
  const reflector = new Reflector({
    kubeConfig,
    source: {
      name: 'things',
      path: '/api/v1/things',
      list: async () => {
        lists++;
        // The first list has a and b; b is gone by the relist.
        return {
          apiVersion: 'v1',
          kind: 'List',
          metadata: { resourceVersion: '1' },
          items: lists === 1 ? [object('a'), object('b')] : [object('a')],
        };
      },
      keysOf: (item) => [item.metadata?.name ?? '?'],
      cache: true,
    },
    enqueue: () => undefined,
    log: silentLogger,
    resyncMs: 60_000,
    watchTimeoutSeconds: 60,
  });
  reflector.start();
  t.teardown(() => reflector.stop());
  await reflector.synced;
  const until = async (what: string, check: () => boolean) => {
    const deadline = Date.now() + 5000;
    while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    t.ok(check(), what);
  };
  // The 410 relists at once (list 2, without b); then the 500 unsyncs it and backs off.
  await until('relisted after the 410', () => lists >= 2);
  await until('the failed watch unsynced the cache', () => watches >= 2 && !reflector.hasSynced);
  t.throws(() => reflector.get('n', 'a'), /is not synced/, 'a cache that may be missing changes does not answer');
  await until('synced again after the next list', () => reflector.hasSynced);
  t.ok(reflector.get('n', 'a'), 'a is there');
  t.equal(reflector.get('n', 'b'), undefined, 'b, gone at the relist, is gone from the cache');
});
