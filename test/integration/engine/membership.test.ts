/** Who counts as a member when shards are shared out: only engines that can do the work. */
import t from 'tap';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import { Membership } from '../../../src/engine/membership.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { provisionTestEvent, shardOwners, sleep, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';

t.test('an engine that cannot read Postgres is no member, so it is given no shard to leave unserved', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'membership-test' });
  await connectRedis(redis);
  t.teardown(() => redis.disconnect());
  const spec = await provisionTestEvent(pool, { shardCount: 4, layout: testLayout({ rows: 4, seats: 10 }) });
  const members = () => redis.zrange(`sentinel:engines:${spec.eventId}`, 0, -1);

  // Redis and NATS as usual; Postgres refuses it (a database that does not exist: as wrong
  // credentials, or no connection to be had, every query fails).
  const url = new URL(testConfig().databaseUrl);
  url.pathname = '/sentinel_no_such_database';
  const cut = await startEngine(spec.eventId, { DATABASE_URL: url.toString() }, undefined, 'live');
  t.teardown(() => cut.stop());
  const healthy = await startEngine(spec.eventId);
  t.teardown(() => healthy.stop());

  await waitFor('the healthy engine serves every shard', async () => (await healthy.metric('sentinel_engine_owned_shards')) === 4);
  await waitFor('the cut-off engine has tried some rounds', async () => cut.logs.some((line) => line.includes('Rebalance round failed')));
  await sleep(1000); // a few more of its rounds (every 250 ms), and of the healthy one's
  t.same(await members(), [healthy.id], 'only the healthy engine is a member');
  t.equal(await healthy.metric('sentinel_engine_owned_shards'), 4, 'and it keeps every shard');
  const owners = await shardOwners(pool, spec.eventId);
  t.same([...owners.values()], [healthy.id, healthy.id, healthy.id, healthy.id], 'Postgres names it the owner of all four');
});

t.test('servingSince: members that joined before a time and renewed after another — a rejoin or a leave starts over', async (t) => {
  const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'membership-serving-test' });
  await connectRedis(redis);
  t.teardown(() => redis.disconnect());
  const group = `serving-${Date.now().toString(36)}`;
  t.teardown(async () => void (await redis.del(`sentinel:engines:${group}`, `sentinel:engines:${group}:joined`)));
  let clock = Date.now();
  const member = (id: string) => new Membership(group, redis, id, 5000, () => clock);
  const [a, b, c] = [member('a'), member('b'), member('c')];
  await a.heartbeat(true);
  await b.heartbeat(true);
  const silenceBegan = clock + 500; // a's NATS link goes quiet
  clock += 1000;
  await c.heartbeat(true); // joins during a's silence
  clock += 5000; // a counts as cut from silenceBegan + 5000
  const cutAt = silenceBegan + 5000;
  t.same(await a.servingSince(silenceBegan, cutAt), [], 'nobody renewed after the cut yet');
  await b.heartbeat();
  await c.heartbeat();
  t.same(await a.servingSince(silenceBegan, cutAt), ['b'], 'b was a member before the silence and renewed since; c joined during it');
  await b.heartbeat(true); // b had a break of its own: it joins afresh
  t.same(await a.servingSince(silenceBegan, cutAt), [], 'b rejoined after the silence began: not reachable all along');
  await a.leave();
  t.same((await redis.hkeys(`sentinel:engines:${group}:joined`)).sort(), ['b', 'c'], 'leaving drops the join time');
  clock += 6000; // b and c expire
  await c.heartbeat(true);
  t.same(
    (await redis.hkeys(`sentinel:engines:${group}:joined`)).sort(),
    ['c'],
    'a rejoin drops the join times of engines no longer members',
  );
});

t.test('an engine stays a member through a round whose claims outlast the membership TTL', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'membership-slow-round-test' });
  await connectRedis(redis);
  t.teardown(() => redis.disconnect());
  const spec = await provisionTestEvent(pool, { shardCount: 4, layout: testLayout({ rows: 4, seats: 10 }) });
  // Every shard row locked: each claim waits out its statement timeout (what is left of its 2 s
  // lease), one after another — a round of about seven seconds, where the membership lasts two.
  const locker = await pool.connect();
  t.teardown(() => locker.release());
  await locker.query('BEGIN');
  await locker.query('SELECT 1 FROM shards WHERE event_id = $1 FOR UPDATE', [spec.eventId]);
  const engine = await startEngine(spec.eventId, {}, undefined, 'live');
  t.teardown(() => engine.stop());
  const expiry = async () => Number((await redis.zscore(`sentinel:engines:${spec.eventId}`, engine.id)) ?? 0);
  await waitFor('the engine joined', async () => (await expiry()) > 0);
  // Its heartbeat row (for the operator) lasts three TTLs: 6 s.
  const rowLeft = async () =>
    Number(
      (
        await pool.query<{ ms: number }>(
          `SELECT extract(epoch FROM expires_at - now()) * 1000 AS ms FROM engine_heartbeats WHERE engine_id = $1`,
          [engine.id],
        )
      ).rows[0]?.ms ?? 0,
    );
  const lapses: number[] = [];
  let rowLeastLeft = Infinity;
  for (const until = Date.now() + 6000; Date.now() < until; await sleep(100)) {
    const left = (await expiry()) - Date.now();
    if (left <= 0) lapses.push(left);
    rowLeastLeft = Math.min(rowLeastLeft, await rowLeft());
  }
  t.same(lapses, [], 'its membership never lapsed');
  t.ok(rowLeastLeft > 3000, `its heartbeat row was kept fresh too (at least ${Math.round(rowLeastLeft)} ms left)`);
  t.ok(engine.logs.filter((line) => line.includes('Claim failed')).length >= 2, 'while its claims waited on the locked rows');
  t.equal(await engine.metric('sentinel_engine_owned_shards'), 0);
  await locker.query('ROLLBACK');
  await waitFor('it serves every shard once the rows are free', async () => (await engine.metric('sentinel_engine_owned_shards')) === 4);
});
