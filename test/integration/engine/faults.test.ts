import t, { type Test } from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { connectRedis, createRedis, type Redis } from '../../../src/adapters/redis/client.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { infra } from '../../support/infra.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver, runStream, type StreamOutcome } from '../../support/shard-driver.js';
import { provisionTestEvent, sleep, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';
import { reservationKeysOnTopic } from '../../support/topic.js';

async function setup(t: Test, shardCount = 2, layout: unknown = testLayout({ rows: 10, seats: 40 })) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'faults-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount, layout, customerLimit: 50 });
  const driver = new ShardDriver(nc, spec, 15_000);
  const engine = await startEngine(spec.eventId);
  t.teardown(() => engine.stop().then(() => undefined));
  await waitFor('engine owns every shard', async () => (await engine.metric('sentinel_engine_owned_shards')) === shardCount);
  return { pool, driver, spec, engine };
}

/** Holds seat i and confirms it; returns both answers. */
async function buy(driver: ShardDriver, seat: string, tag: string): Promise<ShardResult[]> {
  const customer = `${tag}-${seat}`;
  const held = await driver.send({ type: 'hold', key: `${tag}-hold-${seat}`, customer, seats: [seat] });
  if (held.type !== 'held') return [held];
  const shard = driver.map.shardOfSeat(seat) ?? 0;
  const confirmed = await driver.send({ type: 'confirm', key: `${tag}-confirm-${seat}`, customer, holdId: held.hold.holdId }, shard);
  return [held, confirmed];
}

t.test('Kafka down during confirmations: the outbox grows, then drains to the topic when Kafka returns', async (t) => {
  const { pool, driver, spec } = await setup(t);
  const seats = driver.seats().slice(0, 60);
  const results: ShardResult[] = [];
  for (const seat of seats.slice(0, 20)) results.push(...(await buy(driver, seat, 'kafka')));
  await infra('stop', 'kafka');
  t.teardown(() => infra('start', 'kafka'));
  for (const seat of seats.slice(20, 60)) results.push(...(await buy(driver, seat, 'kafka')));
  const confirmed = results.filter((r) => r.type === 'confirmed');
  t.equal(confirmed.length, 60, 'confirmations keep succeeding while Kafka is down');
  const pending = await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE event_id = $1 AND published_at IS NULL', [
    spec.eventId,
  ]);
  t.ok(Number(pending.rows[0]?.n) >= 30, `the outbox grew while Kafka was down (${pending.rows[0]?.n} unpublished)`);

  await infra('start', 'kafka');
  await waitFor(
    'outbox drained',
    async () =>
      Number(
        (await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE event_id = $1 AND published_at IS NULL', [spec.eventId]))
          .rows[0]?.n,
      ) === 0,
    90_000,
    500,
  );
  const inDb = (
    await pool.query<{ reservation_id: string }>('SELECT reservation_id FROM reservations WHERE event_id = $1', [spec.eventId])
  ).rows.map((r) => r.reservation_id);
  const onTopic = await reservationKeysOnTopic(spec.eventId, inDb.length);
  t.equal(inDb.length, 60);
  t.same([...new Set(onTopic)].sort(), [...inDb].sort(), 'after dedupe by key, the topic holds exactly the confirmed reservations');
  t.same(await inventoryViolations(pool, spec.eventId, results), []);
});

t.test("Redis down, then back: the engine's /metrics says its Redis client is disconnected, then connected again", async (t) => {
  const { engine, spec } = await setup(t, 1, testLayout({ rows: 1, seats: 4 }));
  t.equal(await engine.metric('sentinel_engine_redis_connected'), 1, 'connected while Redis is up');
  t.equal(await engine.count('sentinel_engine_redis_reconnects_total'), 0, 'no reconnection yet');
  await infra('stop', 'redis');
  t.teardown(() => infra('start', 'redis'));
  const gauge = (value: number) => async () => (await engine.metric('sentinel_engine_redis_connected')) === value;
  t.ok(await waitFor('the gauge to read 0', gauge(0), 10_000, 50), 'disconnected while Redis is down');
  await infra('start', 'redis');
  t.ok(await waitFor('the gauge to read 1', gauge(1), 30_000, 50), 'connected again once Redis is back');
  t.equal(await engine.count('sentinel_engine_redis_reconnects_total'), 1, 'one reconnection counted');
  // And it serves through Redis again (its shard's lease may have run out meanwhile: a TTL of 2 s).
  await waitFor(
    'the engine owns the shard again',
    async () => (await engine.metric('sentinel_engine_owned_shards')) === spec.shardCount,
    30_000,
  );
});

// Long enough for a restart on a loaded 2-core machine and the stream after it; the stream stops
// well before, as soon as enough commands sent after the restart were answered.
const STREAM_LIMIT_MS = 60_000;
// Commands sent after the restart ended that must be answered before the stream stops.
const AFTER_RESTART = 20;
// A Redis outage at least this long cannot fall between the engine's Redis calls: a rebalance round
// renews its membership every 250 ms (here) plus the round's time, and each shard lease is extended
// every third of its TTL (667 ms here) on a timer of its own.
const REDIS_OUTAGE_SEEN_MS = 1500;
// The lease TTL startEngine gives engines (SENTINEL_LEASE_TTL_MS).
const LEASE_TTL_MS = 2000;

/** A Redis client set up like the engine's (createRedis: the same reconnection, the same command timeout). */
async function redisProbe(t: Test): Promise<Redis> {
  const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'faults-test-probe', commandTimeoutMs: 1000 });
  t.teardown(() => redis.disconnect());
  await connectRedis(redis);
  return redis;
}

/**
 * The longest time (ms) `redis` went without answering, pinged every 20 ms until `restart` is done
 * and Redis answers again (30 s at most after that).
 */
async function redisOutageMs(redis: Redis, restart: Promise<unknown>): Promise<number> {
  let doneAt: number | undefined;
  void restart.then(
    () => (doneAt = Date.now()),
    () => (doneAt = Date.now()),
  );
  let downSince: number | undefined;
  let longest = 0;
  for (;;) {
    const at = Date.now();
    const answered = await redis.ping().then(
      () => true,
      () => false,
    );
    if (!answered) downSince ??= at;
    else if (downSince !== undefined) {
      longest = Math.max(longest, Date.now() - downSince);
      downSince = undefined;
    }
    if (doneAt !== undefined && answered) return longest;
    if (doneAt !== undefined && Date.now() - doneAt > 30_000) throw new Error('Redis did not answer within 30 s of its restart');
    await sleep(20);
  }
}

for (const service of ['redis', 'nats', 'postgres'] as const) {
  t.test(`${service} restart during a stream of holds: the engine recovers by itself, nothing acknowledged is lost`, async (t) => {
    // 6,000 seats: holds go on being decided and committed while the service restarts (however long
    // Redis takes to load its data, on however loaded a machine), so the stream must not run out of
    // seats before the restart ends — at 4 workers and 15 ms pauses, some 25 s of commands.
    const { pool, driver, spec, engine } = await setup(t, 2, testLayout({ sections: 3, rows: 50, seats: 40 }));
    const commands: ShardCommand[] = driver.seats().map((seat, i) => ({
      type: 'hold',
      key: `${service}-${i}`,
      customer: `${service}-c${i}`,
      seats: [seat],
    }));
    // When the restart began and ended (wall clock, as the stream's times). The stream goes on
    // until AFTER_RESTART commands sent after the end were answered, or its time or seats run out.
    let restartBegan = Infinity;
    let restartEnded = Infinity;
    // What the stream has had answered so far, as its stop condition last saw it.
    let sofar: StreamOutcome = { acknowledged: [], failed: [] };
    const streamDeadline = Date.now() + STREAM_LIMIT_MS;
    const streaming = runStream(driver, commands, 4, 15, (outcome) => {
      sofar = outcome;
      return Date.now() > streamDeadline || outcome.acknowledged.filter((a) => a.sentAt > restartEnded).length >= AFTER_RESTART;
    });
    await waitFor('the stream is under way', () => sofar.acknowledged.length >= 50, 20_000, 10);
    const probe = service === 'redis' ? await redisProbe(t) : undefined;
    const logged = engine.logs.length;
    const commitsFailed = await engine.count('sentinel_engine_lease_events_total', { event: 'commit_failed' });
    restartBegan = Date.now();
    const restarting = infra('restart', service).then(() => {
      restartEnded = Date.now();
    });
    const outageMs = probe === undefined ? undefined : await redisOutageMs(probe, restarting);
    await restarting;
    const outcome = await streaming;
    const sent = outcome.acknowledged.length + outcome.failed.length;

    // The restart happened mid-stream: commands were answered before it began, were under way
    // while it went on, and commands sent after it ended were answered too.
    const before = outcome.acknowledged.filter((a) => a.answeredAt < restartBegan).length;
    const during = outcome.acknowledged.filter((a) => a.sentAt < restartEnded && a.answeredAt > restartBegan).length;
    const after = outcome.acknowledged.filter((a) => a.sentAt > restartEnded).length;
    t.ok(before > 0, `${before} commands answered before the restart began`);
    t.ok(during > 0, `${during} commands under way during the restart (${restartEnded - restartBegan} ms) were answered`);
    t.ok(after >= AFTER_RESTART, `${after} commands sent after the restart ended were answered (${sent} sent in all)`);

    // The engine recovered by itself: it is ready on a round that ended after the restart ended (ready
    // means the last round succeeded within a lease TTL, and a round renews the membership in Redis
    // and reads Postgres, with NATS answering).
    t.ok(
      await waitFor(
        'the engine ready on a round after the restart',
        async () => Date.now() - restartEnded > LEASE_TTL_MS && (await fetch(`http://127.0.0.1:${engine.httpPort}/readyz`)).ok,
        30_000,
      ),
      'the engine is ready again: a round succeeded after the restart',
    );

    // The engine saw the outage, by what it logs and counts for this service.
    const since = engine.records(logged);
    const saw = (msg: string, match: (r: Record<string, unknown>) => boolean = () => true) =>
      since.some((r) => r['msg'] === msg && match(r));
    if (service === 'nats') {
      // Its NATS client loses the connection when the server stops, and logs it: always seen.
      t.ok(
        saw('NATS connection status', (r) => r['status'] === 'disconnect'),
        'the engine logged its NATS disconnection',
      );
      t.ok(
        saw('NATS connection status', (r) => r['status'] === 'reconnect'),
        'and its reconnection',
      );
    } else if (service === 'postgres') {
      // A fast shutdown ends every connection, and holds go on being decided while Postgres is away:
      // their group commits fail, and each shard whose commit failed stops (to be claimed again and
      // rebuilt from Postgres: "owns every shard again" below) — and is counted.
      t.ok(
        (await engine.count('sentinel_engine_lease_events_total', { event: 'commit_failed' })) > commitsFailed,
        'the engine counted group commits that failed during the restart',
      );
    } else {
      // The restart ends the engine's Redis connection: its client says so — "lost" when Redis
      // closed it, "failed" when the socket broke with an error first — and says when it is back.
      t.ok(saw('Redis connection lost; reconnecting') || saw('Redis connection failed'), 'the engine logged the lost Redis connection');
      t.ok(saw('Redis connection restored'), 'and its return');
      // Holds never touch Redis: what the engine does there is renew its membership (every round)
      // and extend its shard leases. A round, heartbeat or lease extension that fails is logged —
      // but only if one fell in the outage, and a Redis with little data to load can be back
      // between two of them. So that log is required only of an outage too long to slip between
      // them (measured by a client set up like the engine's); that the engine works with Redis
      // again after any outage is required by the readiness check above.
      if (outageMs !== undefined && outageMs >= REDIS_OUTAGE_SEEN_MS) {
        t.ok(
          saw('Rebalance round failed') || saw('Heartbeat between rounds failed') || saw('Shard lease not extended; retrying'),
          `the engine logged Redis calls that failed during the ${outageMs} ms outage`,
        );
      } else {
        t.comment(`Redis did not answer for only ${outageMs} ms: the engine need not have noticed`);
      }
    }
    t.same(
      await inventoryViolations(
        pool,
        spec.eventId,
        outcome.acknowledged.map((a) => a.result),
      ),
      [],
      'every acknowledged hold is in Postgres, no seat held twice',
    );
    t.ok(
      outcome.failed.length <= 20,
      `${outcome.acknowledged.length}/${sent} answered within their deadline (${outcome.failed.length} timed out during the restart)`,
    );
    // Recovered: the engine serves again and a retry of every command sent (same keys) settles all.
    await waitFor('engine owns every shard again', async () => (await engine.metric('sentinel_engine_owned_shards')) === 2, 30_000);
    const retry = await runStream(driver, commands.slice(0, sent), 8);
    t.same(retry.failed, [], 'after recovery every command is answered');
    t.equal(retry.acknowledged.filter((a) => a.result.type === 'held').length, sent, 'every seat is held exactly once');
    t.same(
      await inventoryViolations(
        pool,
        spec.eventId,
        retry.acknowledged.map((a) => a.result),
      ),
      [],
    );
  });
}
