import t from 'tap';
import { InventoryStore, WRITE_SEATS_SQL } from '../../../src/adapters/postgres/inventory-store.js';
import { migrate } from '../../../src/adapters/postgres/migrate.js';
import { createPgPool, inTransaction } from '../../../src/adapters/postgres/pool.js';
import { emptyBatchWrite, foldChanges } from '../../../src/engine/batch-write.js';
import { archiveEvent, closeEvent, inventoryCounts, provisionEvent } from '../../../src/engine/provision.js';
import { FencedError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

t.test('provisioning is idempotent, applies safe changes and refuses unsafe ones', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { layout: testLayout({ sections: 2, rows: 4, seats: 10, pool: 100 }), shardCount: 3 });
  t.same(await provisionEvent(pool, spec), { status: 'unchanged' }, 'a second call changes nothing');
  const counts = await inventoryCounts(pool, spec.eventId);
  t.same(counts, { total: 180, available: 180, held: 0, sold: 0, shards: { desired: 3, owned: 0 } });
  t.same(await provisionEvent(pool, { ...spec, customerLimit: 10, saleClosesAt: new Date(spec.saleClosesAt.getTime() + 60_000) }), {
    status: 'updated',
    changed: ['customerLimit', 'saleClosesAt'],
  });
  const changed = await provisionEvent(pool, { ...spec, layout: testLayout({ sections: 2, rows: 4, seats: 11, pool: 100 }) });
  t.equal(changed.status === 'refused' && changed.reason, 'layout-changed');
  const resharded = await provisionEvent(pool, { ...spec, shardCount: 4 });
  t.equal(resharded.status === 'refused' && resharded.reason, 'shard-count-changed');
  const bad = await provisionEvent(pool, { ...spec, eventId: 'other-event', layout: { sections: [{ id: 'A', rows: [] }], pools: [] } });
  t.equal(bad.status, 'refused');
  t.match(bad.status === 'refused' ? bad.message : '', /rows/);
  t.equal((await pool.query('SELECT 1 FROM events WHERE id = $1', ['other-event'])).rowCount, 0, 'nothing half-written');

  // Two concurrent provisionings of a new event: one creates, the other finds it unchanged.
  const fresh = { ...spec, eventId: `${spec.eventId}-x` };
  const outcomes = await Promise.all([provisionEvent(pool, fresh), provisionEvent(pool, fresh)]);
  t.same(outcomes.map((o) => o.status).sort(), ['created', 'unchanged']);

  await closeEvent(pool, spec.eventId);
  t.same(await archiveEvent(pool, spec.eventId), { archivedReservations: 0 });
  t.equal((await provisionEvent(pool, spec)).status, 'refused', 'an archived event is never re-provisioned');
});

t.test('fencing: a commit with a superseded epoch, or a stale seat version, writes nothing', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 1, seats: 4 }) });
  const store = new InventoryStore(pool);
  const oldEpoch = await store.claimShard(spec.eventId, 0, 'old-owner');
  const newEpoch = await store.claimShard(spec.eventId, 0, 'new-owner');
  t.equal(newEpoch, oldEpoch + 1, 'each claim bumps the epoch');

  const now = Date.now();
  const h1 = `h_${spec.eventId}_1`;
  const h2 = `h_${spec.eventId}_2`;
  const write = emptyBatchWrite();
  foldChanges(
    write,
    [
      { type: 'seat', seat: 'A-1-1', state: 'held', holdId: h1, fromVersion: 0, toVersion: 1 },
      {
        type: 'hold-created',
        hold: { holdId: h1, customer: 'alice', seats: ['A-1-1'], quantity: 1, createdAt: now, expiresAt: now + 60_000 },
      },
    ],
    now,
  );
  const commit = (epoch: number) =>
    inTransaction(pool, 'test commit', async (client) => {
      await store.fenceAndCheckUsage(client, spec.eventId, 0, epoch, write.usage, 8);
      await store.writeBatch(client, spec.eventId, 0, write, 'sentinel.reservations');
    });
  await t.rejects(commit(oldEpoch), FencedError, 'the stale owner is fenced');
  t.equal((await pool.query('SELECT 1 FROM holds WHERE hold_id = $1', [h1])).rowCount, 0, 'and wrote nothing');
  await commit(newEpoch);
  t.equal((await pool.query(`SELECT state FROM seats WHERE event_id = $1 AND seat_id = 'A-1-1'`, [spec.eventId])).rows[0]?.state, 'held');
  // The same write again: the seat is at version 1 now, so the versioned write matches no row.
  const again = emptyBatchWrite();
  foldChanges(again, [{ type: 'seat', seat: 'A-1-1', state: 'held', holdId: h2, fromVersion: 0, toVersion: 1 }], now);
  await t.rejects(
    inTransaction(pool, 'stale version', async (client) => {
      await store.fenceAndCheckUsage(client, spec.eventId, 0, newEpoch, again.usage, 8);
      await store.writeBatch(client, spec.eventId, 0, again, 'sentinel.reservations');
    }),
    FencedError,
    'a stale seat version is refused',
  );
  t.equal((await pool.query(`SELECT hold_id FROM seats WHERE event_id = $1 AND seat_id = 'A-1-1'`, [spec.eventId])).rows[0]?.hold_id, h1);
});

t.test('event-wide customer limit: usage beyond the limit is refused in the commit', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 1 });
  const store = new InventoryStore(pool);
  const epoch = await store.claimShard(spec.eventId, 0, 'owner');
  const check = (usage: Map<string, number>) =>
    inTransaction(pool, 'usage', (client) => store.fenceAndCheckUsage(client, spec.eventId, 0, epoch, usage, 4));
  t.same([...(await check(new Map([['alice', 3]]))).refused], []);
  t.same(
    [
      ...(
        await check(
          new Map([
            ['alice', 2],
            ['bob', 4],
          ]),
        )
      ).refused,
    ],
    [['alice', 3]],
    'alice would have 5 > 4 (she uses 3 now)',
  );
  t.same([...(await check(new Map([['alice', -2]]))).refused], []);
  t.same([...(await check(new Map([['alice', 3]]))).refused], [], 'after releasing 2, alice can hold 3 more');
  const usage = await pool.query<{ customer: string; used: number }>(
    'SELECT customer, used FROM customer_usage WHERE event_id = $1 ORDER BY customer',
    [spec.eventId],
  );
  t.same(usage.rows, [
    { customer: 'alice', used: 4 },
    { customer: 'bob', used: 4 },
  ]);
});

t.test('a new event is planned with its own statistics: a commit reads only its seats, not the whole event', async (t) => {
  // A database of its own with one earlier event, analyzed (as autovacuum would), then a new event:
  // planned with statistics from before it existed, the seat write hashed all of the new event's
  // seats on every commit. Provisioning analyzes, so the write looks up each seat by its key.
  const admin = await testDatabase();
  t.teardown(() => admin.end());
  const name = uniqueName('plan')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_');
  await admin.query(`CREATE DATABASE ${name}`);
  t.teardown(() => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  const url = new URL(testConfig().databaseUrl);
  url.pathname = `/${name}`;
  const pool = createPgPool({ url: url.toString(), max: 2, log: silentLogger });
  t.teardown(() => pool.end());
  await migrate(pool, silentLogger);
  const layout = testLayout({ sections: 4, rows: 50, seats: 100 }); // 20,000 seats
  await provisionTestEvent(pool, { layout });
  await pool.query('ANALYZE seats');
  const spec = await provisionTestEvent(pool, { layout });
  const seats = Array.from({ length: 30 }, (_, i) => `B-${i + 1}-7`);
  const { rows } = await pool.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${WRITE_SEATS_SQL}`, [
    spec.eventId,
    seats,
    seats.map(() => 'held'),
    seats.map(() => 'h_x'),
    seats.map(() => 0),
    seats.map(() => 1),
  ]);
  const plan = JSON.stringify(rows[0]!['QUERY PLAN']);
  t.match(plan, /"Index Name":"seats_pkey"/, 'each seat is found by its key');
  t.notMatch(plan, /"Node Type":"Hash Join"/, 'no hash of the event');
  t.notMatch(plan, /seats_by_shard/, 'no scan of a whole shard');
});

t.test('commits of different shards touching the same customers in any order never deadlock', async (t) => {
  // The usage counters are the one table every shard writes. Found in a benchmark: two commits
  // locking the same customers' rows in opposite orders deadlocked, and Postgres broke the tie
  // only after deadlock_timeout (1 s), failing a commit and stalling its shard.
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const shards = 4;
  const spec = await provisionTestEvent(pool, { shardCount: shards, customerLimit: 1_000_000 });
  const store = new InventoryStore(pool);
  const epochs = await Promise.all(Array.from({ length: shards }, (_, shard) => store.claimShard(spec.eventId, shard, `owner-${shard}`)));
  const customers = Array.from({ length: 12 }, (_, i) => `c${i}`);
  // Everyone starts with some usage, so shrinking is possible from the first round.
  await inTransaction(pool, 'seed', (client) =>
    store.fenceAndCheckUsage(client, spec.eventId, 0, epochs[0]!, new Map(customers.map((c) => [c, 1000])), 1_000_000),
  );
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const deadlocks: string[] = [];
  await Promise.all(
    Array.from({ length: shards }, async (_, shard) => {
      for (let round = 0; round < 40; round++) {
        // A random subset in a random order, growing some customers and shrinking others.
        const usage = new Map<string, number>();
        for (const c of [...customers].sort(() => random() - 0.5)) if (random() < 0.6) usage.set(c, random() < 0.5 ? 1 : -1);
        try {
          await inTransaction(pool, 'usage', (client) =>
            store.fenceAndCheckUsage(client, spec.eventId, shard, epochs[shard]!, usage, 1_000_000),
          );
        } catch (error) {
          deadlocks.push(`shard ${shard} round ${round}: ${(error as Error).message}`);
        }
      }
    }),
  );
  t.same(deadlocks, [], 'no commit failed');
  const { rows } = await pool.query<{ used: number }>('SELECT sum(used)::int AS used FROM customer_usage WHERE event_id = $1', [
    spec.eventId,
  ]);
  t.ok(rows[0]!.used > 0, 'the counters moved');
});
