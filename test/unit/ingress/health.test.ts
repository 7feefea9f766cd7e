/**
 * The app's `/healthz` and `sentinel_ingress_dependency_up`, over HTTP, with stand-ins for Redis,
 * NATS and Postgres (the integration tests run the real ones): `/healthz` fails for a NATS
 * connection closed for good, unless shutting down; the gauge follows the dependencies with no
 * `/readyz` asked.
 */
import t from 'tap';
import { READINESS_CACHE_MS } from '../../../src/ingress/readiness.js';
import { startStandInApp as start } from './stand-in-app.js';

t.test('/healthz: 503 once NATS is closed for good, naming it in generic words; a dependency merely down does not fail it', async (t) => {
  const { state, app, get } = await start(t);
  const ok = await get('/healthz');
  t.equal(ok.status, 200);
  t.same(ok.body, { status: 'ok' });
  state.redisDown = true;
  state.redisStatus = 'reconnecting';
  t.equal((await get('/healthz')).status, 200, 'Redis reconnecting: alive (a restart would not mend it)');
  state.natsClosed = true;
  const failed = await get('/healthz');
  t.equal(failed.status, 503, 'NATS closed for good: the liveness probe restarts the container');
  t.same(failed.body, { status: 'failed', checks: { nats: 'failed: closed' } });
  t.same(app.openapi.checkResponse('getHealth', 503, failed.body, failed.headers), [], 'conforms to the document');
  t.same(app.openapi.checkResponse('getHealth', 200, ok.body, ok.headers), [], 'and so does the 200');
  t.notMatch(failed.text, /10\.0\.0\.5|ECONNREFUSED/);
});

t.test('/healthz: a NATS connection closed while shutting down (the app drains it) does not fail it', async (t) => {
  const { state, running, app, get } = await start(t);
  // The close's drain delay: the listener still accepts while the readiness probe reports 503.
  const closing = running.close({ drainDelayMs: 300, graceMs: 100 });
  state.natsClosed = true;
  const health = await get('/healthz');
  t.equal(health.status, 200);
  t.same(health.body, { status: 'shutting-down' });
  t.same(app.openapi.checkResponse('getHealth', 200, health.body, health.headers), []);
  t.equal((await get('/readyz')).status, 503, 'while /readyz fails');
  await closing;
});

t.test('the gauge follows the dependencies on its own timer: no /readyz is asked', async (t) => {
  let clock = 1_000_000;
  const { state, get, app } = await start(t, { dependencyCheckIntervalMs: 10, now: () => clock });
  const gauge = async (dependency: string) => {
    const text = (await get('/metrics')).text;
    return new RegExp(`sentinel_ingress_dependency_up\\{dependency="${dependency}"\\} (\\d)`).exec(text)?.[1];
  };
  const settle = async (dependency: string, value: string) => {
    const deadline = Date.now() + 2000;
    while ((await gauge(dependency)) !== value && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    return gauge(dependency);
  };
  t.equal(await settle('redis', '1'), '1', 'checked once the app runs');
  t.equal(await gauge('nats'), '1');
  t.equal(await gauge('postgres'), '1');
  state.redisDown = true;
  clock += READINESS_CACHE_MS;
  t.equal(await settle('redis', '0'), '0', 'a dependency down shows');
  state.redisDown = false;
  clock += READINESS_CACHE_MS;
  t.equal(await settle('redis', '1'), '1', 'and its recovery, with no /readyz asked');
  t.ok(app.readiness.watching);
  await app.readiness.report();
  t.ok(app.readiness.watching, 'still watching');
});

t.test('the timer stops with the graceful stop', async (t) => {
  const { running, app } = await start(t, { dependencyCheckIntervalMs: 10 });
  t.ok(app.readiness.watching, 'each process checks by itself');
  await running.close({ graceMs: 100 });
  t.notOk(app.readiness.watching, 'stopped by the close');
});
