import t, { type Test } from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { infra } from '../../support/infra.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver, runStream } from '../../support/shard-driver.js';
import { provisionTestEvent, sleep, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';
import { reservationKeysOnTopic } from '../../support/topic.js';

async function setup(t: Test, shardCount = 2) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'faults-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount, layout: testLayout({ rows: 10, seats: 40 }), customerLimit: 50 });
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

for (const service of ['redis', 'nats', 'postgres'] as const) {
  t.test(`${service} restart during a stream of holds: the engine recovers by itself, nothing acknowledged is lost`, async (t) => {
    const { pool, driver, spec, engine } = await setup(t);
    const seats = driver.seats();
    const commands: ShardCommand[] = seats
      .slice(0, 300)
      .map((seat, i) => ({ type: 'hold', key: `${service}-${i}`, customer: `${service}-c${i}`, seats: [seat] }));
    const streaming = runStream(driver, commands, 4, 15);
    await sleep(500);
    await infra('restart', service);
    const outcome = await streaming;
    const results = outcome.acknowledged.map((a) => a.result);
    t.same(await inventoryViolations(pool, spec.eventId, results), [], 'every acknowledged hold is in Postgres, no seat held twice');
    t.ok(
      outcome.acknowledged.length >= 280,
      `${outcome.acknowledged.length}/300 answered within their deadline (${outcome.failed.length} timed out during the restart)`,
    );
    // Recovered: the engine serves again and a retry of every command (same keys) settles all.
    await waitFor('engine owns every shard again', async () => (await engine.metric('sentinel_engine_owned_shards')) === 2, 30_000);
    const retry = await runStream(driver, commands, 8);
    t.same(retry.failed, [], 'after recovery every command is answered');
    t.equal(retry.acknowledged.filter((a) => a.result.type === 'held').length, 300, 'every seat is held exactly once');
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
