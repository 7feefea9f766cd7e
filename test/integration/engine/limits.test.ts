/**
 * The event-wide customer limit inside a group commit, against a real engine: a customer's pool
 * hold refused by the limit (their other holds are on another shard) decided just before another
 * customer's pool hold in the same commit. The later decision recorded pool counters that still
 * counted the refused place; the commit must write the pool without it, and must not fall back to
 * rebuilding the shard — retries of both would arrive together again and rebuild it forever.
 */
import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver } from '../../support/shard-driver.js';
import { provisionTestEvent, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';

t.test('a refused pool hold decided before an accepted one: both answered, the pool row exact, no rebuild', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'limits-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount: 2, customerLimit: 1, layout: testLayout({ rows: 4, seats: 10, pool: 10 }) });
  const driver = new ShardDriver(nc, spec);
  const engine = await startEngine(spec.eventId);
  t.teardown(async () => {
    await engine.stop();
  });
  await waitFor('both shards owned', async () => (await engine.metric('sentinel_engine_owned_shards')) === 2);

  const poolShard = driver.shardOf({ type: 'hold-pool', key: 'x', customer: 'x', pool: 'GA', quantity: 1 });
  const elsewhere = driver.map.seatsOfShard(1 - poolShard)[0]!;
  // Ann's one allowed place, on the other shard: the pool's shard does not know of it.
  t.equal((await driver.send({ type: 'hold', key: 'ann-seat', customer: 'ann', seats: [elsewhere] })).type, 'held');

  // One request message, one group commit: Ann's pool hold (refused at commit), then Bob's.
  const [ann, bob] = await Promise.all([
    driver.send({ type: 'hold-pool', key: 'ann-pool', customer: 'ann', pool: 'GA', quantity: 1 }),
    driver.send({ type: 'hold-pool', key: 'bob-pool', customer: 'bob', pool: 'GA', quantity: 1 }),
  ]);
  t.match(ann, { type: 'limit-exceeded', limit: 1, current: 1, requested: 1 });
  t.equal(bob.type, 'held', "bob's place, decided after ann's refused one in the same commit, is held");

  const { rows } = await pool.query<{ held: number; sold: number }>('SELECT held, sold FROM pools WHERE event_id = $1 AND pool_id = $2', [
    spec.eventId,
    'GA',
  ]);
  t.same(rows[0], { held: 1, sold: 0 }, "the pool row counts bob's place only");
  // Memory and the database agree on the pool's version: the next commit is not fenced.
  t.equal((await driver.send({ type: 'hold-pool', key: 'cy-pool', customer: 'cy', pool: 'GA', quantity: 1 })).type, 'held');
  t.same((await pool.query('SELECT held FROM pools WHERE event_id = $1', [spec.eventId])).rows[0], { held: 2 });
  t.notOk(
    engine.logs.some((line) => line.includes('Commit failed') || line.includes('Fenced')),
    'no commit failed and the shard was never rebuilt',
  );
  t.same(await inventoryViolations(pool, spec.eventId), []);
});
