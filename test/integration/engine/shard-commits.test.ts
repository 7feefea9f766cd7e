/**
 * The group commits of an engine's shards, written together (src/engine/shard-commits.ts; ADR 0009,
 * addendum of 2026-12-05): against the real Postgres and `sentinel_commit_shards`, what a commit of
 * several shards writes, and that each shard still gets its own commit's answer when Postgres
 * refuses the commit as a whole.
 */
import t from 'tap';
import type pg from 'pg';
import { InventoryStore } from '../../../src/adapters/postgres/inventory-store.js';
import { emptyBatchWrite, foldChanges, type BatchWrite } from '../../../src/engine/batch-write.js';
import { ShardCommits, type CommitWay } from '../../../src/engine/shard-commits.js';
import { DependencyError, FencedError, type SentinelError } from '../../../src/errors.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

const TOPIC = 'sentinel.reservations';

/** An event of three shards, each claimed, with one seat of each. */
async function threeShards(pool: pg.Pool, customerLimit = 8) {
  const spec = await provisionTestEvent(pool, { shardCount: 3, customerLimit, layout: testLayout({ rows: 3, seats: 10 }) });
  const store = new InventoryStore(pool);
  const epochs = [];
  for (const shard of [0, 1, 2]) epochs.push(await store.claimShard(spec.eventId, shard, 'engine-a'));
  const { rows } = await pool.query<{ shard: number; seat_id: string }>(
    'SELECT DISTINCT ON (shard) shard, seat_id FROM seats WHERE event_id = $1 ORDER BY shard, seat_id',
    [spec.eventId],
  );
  const seats = rows.map((r) => r.seat_id);
  t.equal(seats.length, 3, 'a seat in each shard');
  const counts = new Map<CommitWay, number>();
  const commits = new ShardCommits(store, (way) => counts.set(way, (counts.get(way) ?? 0) + 1));
  return { eventId: spec.eventId, store, epochs, seats, commits, counts };
}

/** A one-shot reserve of `seat` by `customer` (`quantity` counted against the limit), as a shard's batch writes it. */
function reserve(eventId: string, seat: string, customer: string, quantity = 1): BatchWrite {
  const now = Date.now();
  const holdId = `h_${eventId}_${seat}`;
  const reservationId = `r_${eventId}_${seat}`;
  const reservation = { reservationId, holdId, customer, seats: [seat], quantity, confirmedAt: now };
  const write = emptyBatchWrite();
  foldChanges(
    write,
    [
      { type: 'seat', seat, state: 'sold', holdId, fromVersion: 0, toVersion: 1 },
      { type: 'hold-created', hold: { holdId, customer, seats: [seat], quantity, createdAt: now, expiresAt: now + 60_000 } },
      { type: 'reservation-created', reservation },
      {
        type: 'idempotency',
        key: `k_${seat}`,
        customer,
        fingerprint: 'f',
        result: { ok: true, type: 'confirmed', reservation },
        at: now,
      },
    ],
    now,
  );
  return write;
}

t.test("shards' commits handed in together are one transaction, each row under its shard", async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { eventId, epochs, seats, commits, counts } = await threeShards(pool);
  const versions = async () =>
    (await pool.query<{ version: string }>('SELECT version FROM shards WHERE event_id = $1 ORDER BY shard', [eventId])).rows.map((r) =>
      Number(r.version),
    );
  const before = await versions();
  const checks = await Promise.all(
    seats.map((seat, shard) => commits.commitBatch(eventId, shard, epochs[shard]!, 8, reserve(eventId, seat, `c${shard}`), TOPIC)),
  );
  t.same(
    checks.map((c) => c.refused.size),
    [0, 0, 0],
    'each shard is told its commit went through',
  );
  t.same(Object.fromEntries(counts), { together: 1 }, 'in one commit of the three');
  t.same(
    (await versions()).map((v, i) => v - before[i]!),
    [1, 1, 1],
    'each shard fenced once',
  );
  const rows = async (table: string) =>
    (
      await pool.query<{ shard: number; n: number }>(
        `SELECT shard, count(*)::int AS n FROM ${table} WHERE event_id = $1 GROUP BY shard ORDER BY shard`,
        [eventId],
      )
    ).rows;
  const each = [0, 1, 2].map((shard) => ({ shard, n: 1 }));
  for (const table of ['holds', 'reservations', 'idempotency_keys']) t.same(await rows(table), each, `${table}: one row in each shard`);
  const sold = await pool.query(`SELECT 1 FROM seats WHERE event_id = $1 AND state = 'sold'`, [eventId]);
  t.equal(sold.rowCount, 3, 'the three seats are sold');
  const outbox = await pool.query<{ payload: { shard: number } }>('SELECT payload FROM outbox WHERE event_id = $1 ORDER BY id', [eventId]);
  t.same(
    outbox.rows.map((r) => r.payload.shard),
    [0, 1, 2],
    'an outbox row for each reservation, naming its shard',
  );
  const transactions = await pool.query('SELECT DISTINCT xmin FROM reservations WHERE event_id = $1', [eventId]);
  t.equal(transactions.rowCount, 1, 'all written by one transaction');
  const usage = await pool.query('SELECT customer, used FROM customer_usage WHERE event_id = $1 ORDER BY customer', [eventId]);
  t.same(
    usage.rows,
    [0, 1, 2].map((i) => ({ customer: `c${i}`, used: 1 })),
  );
});

t.test('a fenced shard among them: the others commit, the fenced one is told so and wrote nothing', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { eventId, store, epochs, seats, commits, counts } = await threeShards(pool);
  await store.claimShard(eventId, 1, 'engine-b'); // shard 1 moved on: engine-a's epoch is stale
  const outcomes = await Promise.allSettled(
    seats.map((seat, shard) => commits.commitBatch(eventId, shard, epochs[shard]!, 8, reserve(eventId, seat, `c${shard}`), TOPIC)),
  );
  t.same(
    outcomes.map((o) => o.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  const fenced = outcomes[1];
  t.ok(fenced?.status === 'rejected' && fenced.reason instanceof FencedError, 'shard 1: FencedError, as its own commit gives');
  t.same(Object.fromEntries(counts), { 'together-refused': 1, alone: 3 }, 'the commit of the three was refused, and each went on its own');
  const sold = await pool.query<{ seat_id: string }>(`SELECT seat_id FROM seats WHERE event_id = $1 AND state = 'sold' ORDER BY seat_id`, [
    eventId,
  ]);
  t.same(
    sold.rows.map((r) => r.seat_id),
    [seats[0], seats[2]].sort(),
  );
  t.equal((await pool.query('SELECT 1 FROM holds WHERE event_id = $1 AND shard = 1', [eventId])).rowCount, 0, 'shard 1 wrote nothing');
});

t.test('the customer limit refuses one shard of them: the others commit, it is told whom the limit refused', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { eventId, epochs, seats, commits, counts } = await threeShards(pool, 2);
  const writes = [reserve(eventId, seats[0]!, 'alice'), reserve(eventId, seats[1]!, 'bob', 3), reserve(eventId, seats[2]!, 'carol')];
  const checks = await Promise.all(writes.map((write, shard) => commits.commitBatch(eventId, shard, epochs[shard]!, 2, write, TOPIC)));
  t.same(
    checks.map((c) => Object.fromEntries(c.refused)),
    [{}, { bob: 0 }, {}],
    'bob (3 > 2) is refused in shard 1, with what he uses now',
  );
  t.same(Object.fromEntries(counts), { 'together-refused': 1, alone: 3 });
  const usage = await pool.query('SELECT customer, used FROM customer_usage WHERE event_id = $1 ORDER BY customer', [eventId]);
  t.same(usage.rows, [
    { customer: 'alice', used: 1 },
    { customer: 'carol', used: 1 },
  ]);
});

t.test('what is handed in while a commit is under way goes next, together; a customer in two shards goes in two commits', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { eventId, epochs, seats, commits, counts } = await threeShards(pool);
  const first = commits.commitBatch(eventId, 0, epochs[0]!, 8, reserve(eventId, seats[0]!, 'alice'), TOPIC);
  await new Promise((resolve) => setImmediate(resolve)); // shard 0's commit is under way
  const next = [1, 2].map((shard) => commits.commitBatch(eventId, shard, epochs[shard]!, 8, reserve(eventId, seats[shard]!, 'bob'), TOPIC));
  await Promise.all([first, ...next]);
  t.same(Object.fromEntries(counts), { alone: 3 }, 'shard 0 alone; shards 1 and 2 share bob, so each commits apart');
  counts.clear();

  // Once bob's seats are sold, two more shards' commits with other customers: together.
  const more = await pool.query<{ shard: number; seat_id: string }>(
    `SELECT DISTINCT ON (shard) shard, seat_id FROM seats WHERE event_id = $1 AND state = 'available' AND shard IN (1, 2) ORDER BY shard, seat_id`,
    [eventId],
  );
  const head = commits.commitBatch(eventId, 0, epochs[0]!, 8, reserve(eventId, (await anotherSeat(pool, eventId, 0))!, 'dave'), TOPIC);
  await new Promise((resolve) => setImmediate(resolve));
  await Promise.all([
    head,
    ...more.rows.map((r) => commits.commitBatch(eventId, r.shard, epochs[r.shard]!, 8, reserve(eventId, r.seat_id, `e${r.shard}`), TOPIC)),
  ]);
  t.same(Object.fromEntries(counts), { alone: 1, together: 1 }, 'the two that waited for shard 0 went as one');
});

t.test("a key's newer result replaces an older record, in a commit of several shards as in one shard's (0005)", async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { eventId, epochs, seats, commits, counts } = await threeShards(pool);
  // Shard 0 recorded key k_<seat> for alice two days ago (past any window: the shard forgot it).
  await pool.query(
    `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
     VALUES ($1, 0, $2, 'alice', 'old', '{"ok":false,"type":"unavailable"}', now() - interval '2 days')`,
    [eventId, `k_${seats[0]}`],
  );
  await Promise.all(
    [0, 1].map((shard) => commits.commitBatch(eventId, shard, epochs[shard]!, 8, reserve(eventId, seats[shard]!, 'alice'), TOPIC)),
  );
  t.same(Object.fromEntries(counts), { alone: 2 }, "alice's usage in both: two commits");
  counts.clear();
  await pool.query(
    `UPDATE idempotency_keys SET fingerprint = 'old', created_at = now() - interval '2 days' WHERE event_id = $1 AND shard = 0`,
    [eventId],
  );
  // Now through a commit of several shards: the new write of the key, and another shard's.
  const again = reserve(eventId, seats[0]!, 'alice');
  again.seats.clear(); // the seat is sold already: only the key's new record (as a replay writes it)
  again.holds.clear();
  again.reservations.length = 0;
  again.usage.clear();
  await Promise.all([
    commits.commitBatch(eventId, 0, epochs[0]!, 8, again, TOPIC),
    commits.commitBatch(eventId, 2, epochs[2]!, 8, reserve(eventId, seats[2]!, 'bob'), TOPIC),
  ]);
  t.same(Object.fromEntries(counts), { together: 1 });
  const { rows } = await pool.query<{ fingerprint: string; fresh: boolean }>(
    `SELECT fingerprint, created_at > now() - interval '1 minute' AS fresh FROM idempotency_keys WHERE event_id = $1 AND shard = 0`,
    [eventId],
  );
  t.same(rows, [{ fingerprint: 'f', fresh: true }], 'the newer record replaced the older');
});

t.test('a commit of several shards that gets no answer: each shard commits on its own, and none is stopped for it', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { eventId, store, epochs, seats, counts } = await threeShards(pool);
  // The real store, whose commit of several shards loses its connection once (after Postgres answered, or not).
  let lost = 0;
  const flaky = {
    commitBatch: store.commitBatch.bind(store),
    commitShards: async () => {
      lost++;
      throw new DependencyError('postgres', 'Connection terminated unexpectedly');
    },
  };
  const commits = new ShardCommits(flaky, (way) => counts.set(way, (counts.get(way) ?? 0) + 1));
  const checks = await Promise.all(
    seats.map((seat, shard) => commits.commitBatch(eventId, shard, epochs[shard]!, 8, reserve(eventId, seat, `c${shard}`), TOPIC)),
  );
  t.equal(lost, 1);
  t.same(
    checks.map((c) => c.refused.size),
    [0, 0, 0],
    'every shard committed',
  );
  t.same(Object.fromEntries(counts), { 'together-refused': 1, alone: 3 });
  t.equal((await pool.query(`SELECT 1 FROM seats WHERE event_id = $1 AND state = 'sold'`, [eventId])).rowCount, 3);

  // And when the commit did land before its answer was lost, the repeat writes nothing twice: fenced.
  const landed = {
    commitBatch: store.commitBatch.bind(store),
    commitShards: async (...args: Parameters<InventoryStore['commitShards']>): Promise<'committed'> => {
      t.equal(await store.commitShards(...args), 'committed');
      throw new DependencyError('postgres', 'Connection terminated unexpectedly');
    },
  };
  const more = await pool.query<{ shard: number; seat_id: string }>(
    `SELECT DISTINCT ON (shard) shard, seat_id FROM seats WHERE event_id = $1 AND state = 'available' ORDER BY shard, seat_id`,
    [eventId],
  );
  const landing = new ShardCommits(landed);
  const outcomes = await Promise.allSettled(
    more.rows.map((r) => landing.commitBatch(eventId, r.shard, epochs[r.shard]!, 8, reserve(eventId, r.seat_id, `d${r.shard}`), TOPIC)),
  );
  t.same(
    outcomes.map((o) => (o.status === 'rejected' ? (o.reason as SentinelError).code : o.status)),
    ['commit_outcome_unknown', 'commit_outcome_unknown', 'commit_outcome_unknown'],
    'each shard is told its outcome is not known (not that it was fenced): it rebuilds from what Postgres holds',
  );
  const reservations = await pool.query('SELECT 1 FROM reservations WHERE event_id = $1', [eventId]);
  t.equal(reservations.rowCount, 6, 'and each reservation is there once');

  // A customer at the limit once the lost commit landed: the repeat is refused by the limit (checked
  // before the rows) — counting what landed twice. Not a refusal to pass on: an outcome not known.
  const last = await pool.query<{ shard: number; seat_id: string }>(
    `SELECT DISTINCT ON (shard) shard, seat_id FROM seats WHERE event_id = $1 AND state = 'available' ORDER BY shard, seat_id`,
    [eventId],
  );
  const atLimit = await Promise.allSettled(
    last.rows.map((r) => landing.commitBatch(eventId, r.shard, epochs[r.shard]!, 1, reserve(eventId, r.seat_id, `e${r.shard}`), TOPIC)),
  );
  t.same(
    atLimit.map((o) => (o.status === 'rejected' ? (o.reason as SentinelError).code : o.status)),
    ['commit_outcome_unknown', 'commit_outcome_unknown', 'commit_outcome_unknown'],
    'told the outcome is not known, not that the customer is over the limit',
  );
  t.equal(
    (await pool.query('SELECT 1 FROM reservations WHERE event_id = $1', [eventId])).rowCount,
    9,
    'the landed reservations, once each',
  );
});

t.test("a part going alone after a refusal does not hold up the next commits of the event's other shards", async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { eventId, store, epochs, seats } = await threeShards(pool);
  // The real store, but the commit of several is refused, and shard 1's own commit waits on a lock.
  let unblock = () => undefined as void;
  const lock = new Promise<void>((resolve) => (unblock = resolve));
  const slow = {
    commitShards: async () => 'refused' as const,
    commitBatch: async (...args: Parameters<InventoryStore['commitBatch']>) => {
      if (args[1] === 1) await lock;
      return store.commitBatch(...args);
    },
  };
  const commits = new ShardCommits(slow);
  const [first, waiting] = [0, 1].map((shard) =>
    commits.commitBatch(eventId, shard, epochs[shard]!, 8, reserve(eventId, seats[shard]!, `c${shard}`), TOPIC),
  );
  t.same((await first!).refused.size, 0, "shard 0's part committed alone");
  const next = commits.commitBatch(eventId, 2, epochs[2]!, 8, reserve(eventId, seats[2]!, 'c2'), TOPIC);
  const timeout = new Promise((resolve) => setTimeout(() => resolve('held up'), 2000).unref());
  t.same(await Promise.race([next.then((check) => check.refused.size), timeout]), 0, "shard 2's commit went while shard 1's waits");
  unblock();
  t.same((await waiting!).refused.size, 0, "and shard 1's, once its lock was free");
});

async function anotherSeat(pool: pg.Pool, eventId: string, shard: number): Promise<string | undefined> {
  const { rows } = await pool.query<{ seat_id: string }>(
    `SELECT seat_id FROM seats WHERE event_id = $1 AND shard = $2 AND state = 'available' ORDER BY seat_id LIMIT 1`,
    [eventId, shard],
  );
  return rows[0]?.seat_id;
}
