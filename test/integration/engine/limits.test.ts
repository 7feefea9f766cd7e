/**
 * The event-wide customer limit inside a group commit, against a real engine: a customer's pool
 * hold refused by the limit (their other holds are on another shard) decided just before another
 * customer's pool hold in the same commit. The later decision recorded pool counters that still
 * counted the refused place; the commit must write the pool without it, and must not fall back to
 * rebuilding the shard — retries of both would arrive together again and rebuild it forever.
 */
import t, { type Test } from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { provisionEvent, type EventSpec } from '../../../src/engine/provision.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver } from '../../support/shard-driver.js';
import { provisionTestEvent, startEngine, testDatabase, testLayout, waitFor, waitForBlockedCommit } from '../../support/stack.js';

/** A fresh event served by one engine process, with every shard owned; a shard driver to talk to it. */
async function servedEvent(t: Test, overrides: Partial<EventSpec>) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'limits-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, overrides);
  const driver = new ShardDriver(nc, spec);
  const engine = await startEngine(spec.eventId);
  t.teardown(async () => {
    await engine.stop();
  });
  await waitFor('every shard owned', async () => (await engine.metric('sentinel_engine_owned_shards')) === spec.shardCount);
  return { pool, spec, driver, engine };
}

/**
 * An event whose customers may hold one seat or place, with a GA pool, served by one engine; Ann
 * holds her one, a seat on the shard without the pool — so the pool's shard does not know of it.
 */
async function annAtTheLimit(t: Test) {
  const served = await servedEvent(t, { shardCount: 2, customerLimit: 1, layout: testLayout({ rows: 4, seats: 10, pool: 10 }) });
  const { driver } = served;
  const poolShard = driver.shardOf({ type: 'hold-pool', key: 'x', customer: 'x', pool: 'GA', quantity: 1 });
  const elsewhere = driver.map.seatsOfShard(1 - poolShard)[0]!;
  t.equal((await driver.send({ type: 'hold', key: 'ann-seat', customer: 'ann', seats: [elsewhere] })).type, 'held');
  return served;
}

/** After Ann's refused pool place and Bob's held one: the pool row counts Bob's only, the next commit agrees, nothing was rebuilt. */
async function onlyBobsPlaceCounted(t: Test, { pool, spec, driver, engine }: Awaited<ReturnType<typeof servedEvent>>): Promise<void> {
  const row = async () =>
    (await pool.query<{ held: number; sold: number }>('SELECT held, sold FROM pools WHERE event_id = $1', [spec.eventId])).rows[0];
  t.same(await row(), { held: 1, sold: 0 }, "the pool row counts bob's place only");
  // Memory and the database agree on the pool's counters and version: the next commit is exact too.
  t.equal((await driver.send({ type: 'hold-pool', key: 'cy-pool', customer: 'cy', pool: 'GA', quantity: 1 })).type, 'held');
  t.same(await row(), { held: 2, sold: 0 });
  t.notOk(
    engine.logs.some((line) => line.includes('Commit failed') || line.includes('Fenced')),
    'no commit failed and the shard was never rebuilt',
  );
  t.same(await inventoryViolations(pool, spec.eventId), []);
}

t.test('a refused pool hold decided before an accepted one: both answered, the pool row exact, no rebuild', async (t) => {
  const served = await annAtTheLimit(t);
  const { driver } = served;
  // One request message, one group commit: Ann's pool hold (refused at commit), then Bob's.
  const [ann, bob] = await Promise.all([
    driver.send({ type: 'hold-pool', key: 'ann-pool', customer: 'ann', pool: 'GA', quantity: 1 }),
    driver.send({ type: 'hold-pool', key: 'bob-pool', customer: 'bob', pool: 'GA', quantity: 1 }),
  ]);
  t.match(ann, { type: 'limit-exceeded', limit: 1, current: 1, requested: 1 });
  t.equal(bob.type, 'held', "bob's place, decided after ann's refused one in the same commit, is held");
  await onlyBobsPlaceCounted(t, served);
});

t.test('a refused pool hold decided before one waiting for the next commit: both answered, the pool row exact, no rebuild', async (t) => {
  // Ann's pool hold is refused at commit, and Bob's was decided while that commit ran: it waits for
  // the next one with pool counters that still count Ann's place. Until 2026-12-03 Ann's hold could
  // then not be undone in memory, and every such refusal rebuilt the shard.
  const served = await annAtTheLimit(t);
  const { pool, spec, driver, engine } = served;
  const held = () => engine.metric('sentinel_engine_decisions_total', { result: 'held' });
  const locker = await pool.connect();
  t.teardown(() => locker.release());
  await locker.query('BEGIN');
  await locker.query(`SELECT used FROM customer_usage WHERE event_id = $1 AND customer = 'ann' FOR UPDATE`, [spec.eventId]);
  const ann = driver.send({ type: 'hold-pool', key: 'ann-pool', customer: 'ann', pool: 'GA', quantity: 1 });
  await waitForBlockedCommit(pool, "the commit waiting for ann's usage row");
  const heldBefore = await held();
  const bob = driver.send({ type: 'hold-pool', key: 'bob-pool', customer: 'bob', pool: 'GA', quantity: 1 });
  await waitFor("bob's hold decided while the commit waits", async () => (await held()) === heldBefore + 1);
  await locker.query('ROLLBACK');

  t.match(await ann, { type: 'limit-exceeded', limit: 1 });
  t.equal((await bob).type, 'held', "bob's place, decided after ann's, is held");
  await onlyBobsPlaceCounted(t, served);
});

t.test("of a customer's holds in one commit, the limit refuses only those that do not fit", async (t) => {
  // Ann may hold 4 and holds 2 on shard 1, which shard 0 does not know of: shard 0 takes both of
  // her holds of 2 seats, decided together and committed together. The first fits the event-wide
  // limit, the second does not. Until 2026-12-03 the commit refused both.
  const served = await servedEvent(t, { shardCount: 2, customerLimit: 4, layout: testLayout({ rows: 4, seats: 10 }) });
  const { pool, spec, driver, engine } = served;
  const [a, b, c, d] = driver.map.seatsOfShard(0);
  const [x, y] = driver.map.seatsOfShard(1);
  t.equal((await driver.send({ type: 'hold', key: 'ann-elsewhere', customer: 'ann', seats: [x!, y!] })).type, 'held');
  const [first, second] = await Promise.all([
    driver.send({ type: 'hold', key: 'ann-first', customer: 'ann', seats: [a!, b!] }),
    driver.send({ type: 'hold', key: 'ann-second', customer: 'ann', seats: [c!, d!] }),
  ]);
  t.equal(first.type, 'held', 'the first of the two fits: 2 + 2 ≤ 4');
  t.match(second, { type: 'limit-exceeded', limit: 4, current: 4, requested: 2 }, 'the second does not');
  const { rows } = await pool.query<{ used: number }>(`SELECT used FROM customer_usage WHERE event_id = $1 AND customer = 'ann'`, [
    spec.eventId,
  ]);
  t.same(rows, [{ used: 4 }]);
  t.notOk(
    engine.logs.some((line) => line.includes('Commit failed') || line.includes('Fenced')),
    'no commit failed and the shard was never rebuilt',
  );
  t.same(await inventoryViolations(pool, spec.eventId), []);
});

t.test('a replay of a hold that the limit refuses at commit is answered with the refusal, not a success', async (t) => {
  // Ann is at the event-wide limit through a hold on another shard. Her reserve is a winner in the
  // memory of its own shard, and its commit is held back (another transaction holds her usage row)
  // while a retry with the same key arrives. The commit then refuses the hold and undoes it: the
  // retry must hear that too — were it answered from memory, Ann would have a 201 for a seat that
  // is not hers, and the seat could be sold to someone else.
  const { pool, spec, driver } = await servedEvent(t, { shardCount: 2, customerLimit: 1, layout: testLayout({ rows: 2, seats: 4 }) });
  const [mine, contested] = [driver.map.seatsOfShard(0)[0]!, driver.map.seatsOfShard(1)[0]!];
  t.equal((await driver.send({ type: 'hold', key: 'ann-first', customer: 'ann', seats: [mine] })).type, 'held');

  const locker = await pool.connect();
  t.teardown(() => locker.release());
  await locker.query('BEGIN');
  await locker.query(`SELECT used FROM customer_usage WHERE event_id = $1 AND customer = 'ann' FOR UPDATE`, [spec.eventId]);
  const reserve = { type: 'reserve', key: 'ann-second', customer: 'ann', seat: contested } as const;
  const first = driver.send(reserve);
  await waitForBlockedCommit(pool, "the commit waiting for ann's usage row");
  const retry = driver.send(reserve);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the retry reaches the shard while the commit waits
  await locker.query('ROLLBACK');

  t.match(await first, { type: 'limit-exceeded', limit: 1 });
  t.match(await retry, { type: 'limit-exceeded', limit: 1 }, "the retry follows the first decision's commit");
  const { rows } = await pool.query(`SELECT 1 FROM reservations WHERE event_id = $1 AND customer = 'ann' AND $2 = ANY (seats)`, [
    spec.eventId,
    contested,
  ]);
  t.same(rows, [], 'ann has no reservation of the contested seat');
  t.match(await driver.send({ type: 'reserve', key: 'bob', customer: 'bob', seat: contested }), { type: 'confirmed' }, 'bob can buy it');
  t.same(await inventoryViolations(pool, spec.eventId), []);
});

t.test("the event's new customer limit and hold TTL reach the shards an engine serves, without a restart", async (t) => {
  const { pool, spec, driver, engine } = await servedEvent(t, {
    shardCount: 1,
    customerLimit: 1,
    layout: testLayout({ rows: 1, seats: 4 }),
  });
  const [first, second] = driver.seats();
  t.equal((await driver.send({ type: 'hold', key: 'ann-1', customer: 'ann', seats: [first!] })).type, 'held');
  t.match(await driver.send({ type: 'hold', key: 'ann-2', customer: 'ann', seats: [second!] }), { type: 'limit-exceeded', limit: 1 });

  // What the operator does for a TicketEvent edited mid-sale.
  const updated = await provisionEvent(pool, { ...spec, customerLimit: 2, holdTtlMs: 30_000 });
  t.same(updated, { status: 'updated', changed: ['holdTtlMs', 'customerLimit'] });
  let attempt = 0;
  const held = await waitFor(
    'a second hold within the raised limit',
    async () => {
      // A fresh key each time: a refusal is remembered under its key.
      const result = await driver.send({ type: 'hold', key: `ann-2-${attempt++}`, customer: 'ann', seats: [second!] });
      return result.type === 'held' ? result : undefined;
    },
    5000,
    100,
  );
  t.equal(held.hold.expiresAt - held.hold.createdAt, 30_000, 'a new hold lives for the new TTL');
  t.ok(engine.logs.some((line) => line.includes("Applied the event's new rules")));
  t.same(await inventoryViolations(pool, spec.eventId), []);
});
