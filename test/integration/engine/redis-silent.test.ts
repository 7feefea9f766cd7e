/**
 * An engine whose Redis goes silent — a link that drops every packet, connections left open —
 * still stops when told to: its Redis commands are bounded, so neither the rebalance round in
 * flight nor the hand-off's lease release waits for TCP to give up (many minutes).
 */
import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { ShardDriver } from '../../support/shard-driver.js';
import { provisionTestEvent, sleep, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';
import { tcpRelay } from '../../support/tcp-relay.js';

t.test('SIGTERM with Redis silent: the engine hands off and exits', async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: config.natsUrl, log: silentLogger, name: 'redis-silent-test' });
  t.teardown(() => nc.close());
  const redisUrl = new URL(config.redisUrl);
  const relay = await tcpRelay(redisUrl.hostname, Number(redisUrl.port));
  t.teardown(() => relay.close());
  const relayed = new URL(config.redisUrl);
  relayed.port = String(relay.port);

  const spec = await provisionTestEvent(pool, { layout: testLayout({ rows: 2, seats: 10 }), shardCount: 1 });
  const engine = await startEngine(spec.eventId, { REDIS_URL: relayed.toString() });
  t.teardown(() => engine.signal('SIGKILL'));
  await waitFor('the shard owned', async () => (await engine.metric('sentinel_engine_owned_shards')) === 1);
  const driver = new ShardDriver(nc, spec);
  const seat = driver.map.seatsOfShard(0)[0]!;
  t.equal((await driver.send({ type: 'hold', key: 'ann-1', customer: 'ann', seats: [seat] })).type, 'held');

  relay.blackhole();
  await sleep(500); // a rebalance round is waiting on Redis now (every 250 ms here)
  const started = Date.now();
  const code = await Promise.race([engine.stop(), sleep(15_000).then(() => 'still running' as const)]);
  t.equal(code, 0, `the engine exited, after ${Date.now() - started} ms`);
  const { rows } = await pool.query<{ state: string }>('SELECT state FROM holds WHERE event_id = $1', [spec.eventId]);
  t.same(rows, [{ state: 'live' }], 'what it had committed is there');
});
