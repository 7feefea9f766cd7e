import t, { type Test } from 'tap';
import type pg from 'pg';
import { commitDocument, ENDED_HOLDS_QUERY, InventoryStore, shardsDocument } from '../../../src/adapters/postgres/inventory-store.js';
import { emptyBatchWrite, foldChanges, type BatchWrite } from '../../../src/engine/batch-write.js';
import { archiveEvent, closeEvent, inventoryCounts, provisionEvent } from '../../../src/engine/provision.js';
import { FencedError, VersionConflictError } from '../../../src/errors.js';
import { uniqueName } from '../../support/env.js';
import { ownDatabase, provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

t.test('provisioning is idempotent, applies safe changes and refuses unsafe ones', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { layout: testLayout({ sections: 2, rows: 4, seats: 10, pool: 100 }), shardCount: 3 });
  t.same(await provisionEvent(pool, spec), { status: 'unchanged' }, 'a second call changes nothing');
  const counts = await inventoryCounts(pool, spec.eventId);
  t.same(counts, {
    total: 180,
    available: 180,
    held: 0,
    sold: 0,
    shards: { desired: 3, owned: 0, named: 0 },
    sale: { opensAt: spec.saleOpensAt, closesAt: spec.saleClosesAt },
  });
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
  const commit = (epoch: number) => store.commitBatch(spec.eventId, 0, epoch, 8, write, 'sentinel.reservations');
  await t.rejects(
    commit(oldEpoch),
    { name: 'FencedError', code: 'fenced' },
    'the stale owner is fenced (by its epoch: no version conflict)',
  );
  t.equal((await pool.query('SELECT 1 FROM holds WHERE hold_id = $1', [h1])).rowCount, 0, 'and wrote nothing');
  await commit(newEpoch);
  t.equal((await pool.query(`SELECT state FROM seats WHERE event_id = $1 AND seat_id = 'A-1-1'`, [spec.eventId])).rows[0]?.state, 'held');
  // The same write again: the seat is at version 1 now, so the versioned write matches no row.
  const again = emptyBatchWrite();
  foldChanges(again, [{ type: 'seat', seat: 'A-1-1', state: 'held', holdId: h2, fromVersion: 0, toVersion: 1 }], now);
  await t.rejects(
    store.commitBatch(spec.eventId, 0, newEpoch, 8, again, 'sentinel.reservations'),
    VersionConflictError,
    'a stale seat version is refused, as a version conflict (the epoch is current)',
  );
  t.equal((await pool.query(`SELECT hold_id FROM seats WHERE event_id = $1 AND seat_id = 'A-1-1'`, [spec.eventId])).rows[0]?.hold_id, h1);
});

t.test('Postgres itself refuses a second reservation of a seat, even one written from the version the seat is at', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 1, seats: 4 }) });
  const store = new InventoryStore(pool);
  const epoch = await store.claimShard(spec.eventId, 0, 'owner');
  const sell = (n: number, fromVersion: number) => {
    const now = Date.now();
    const holdId = `h_${spec.eventId}_${n}`;
    const reservation = {
      reservationId: `r_${spec.eventId}_${n}`,
      holdId,
      customer: `c${n}`,
      seats: ['A-1-1'],
      quantity: 1,
      confirmedAt: now,
    };
    const write = emptyBatchWrite();
    foldChanges(
      write,
      [
        { type: 'seat', seat: 'A-1-1', state: 'sold', holdId, fromVersion, toVersion: fromVersion + 1 },
        {
          type: 'hold-created',
          hold: { holdId, customer: `c${n}`, seats: ['A-1-1'], quantity: 1, createdAt: now, expiresAt: now + 60_000 },
        },
        { type: 'reservation-created', reservation },
      ],
      now,
    );
    return store.commitBatch(spec.eventId, 0, epoch, 8, write, 'sentinel.reservations');
  };
  await sell(1, 0);
  // An engine whose memory wrongly had the seat free: its write is at the seat's version, so only
  // the seat's one reservation row can refuse it.
  await t.rejects(sell(2, 1), { message: /reservation_seats/ }, 'refused');
  const { rows } = await pool.query<{ reservation_id: string }>('SELECT reservation_id FROM reservations WHERE event_id = $1', [
    spec.eventId,
  ]);
  t.same(
    rows.map((r) => r.reservation_id),
    [`r_${spec.eventId}_1`],
    'one reservation',
  );
  const seat = await pool.query('SELECT hold_id, version FROM seats WHERE event_id = $1 AND seat_id = $2', [spec.eventId, 'A-1-1']);
  t.same(seat.rows, [{ hold_id: `h_${spec.eventId}_1`, version: 1 }], 'the seat as the first sale left it');
});

t.test("a claim commits only while the claimer's lease is held: a bump after it ran out would fence the next owner", async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 1 });
  const store = new InventoryStore(pool);
  const epochNow = async () =>
    Number(
      (await pool.query<{ epoch: string }>('SELECT epoch FROM shards WHERE event_id = $1 AND shard = 0', [spec.eventId])).rows[0]!.epoch,
    );
  const first = await store.claimShard(spec.eventId, 0, 'a', { expiresAt: Date.now() + 5000, holdOrLose: () => true });
  t.equal(await epochNow(), first, 'held: the bump commits');
  await t.rejects(
    store.claimShard(spec.eventId, 0, 'b', { expiresAt: Date.now() + 100, holdOrLose: () => true }),
    FencedError,
    'too little of the lease left to commit in: refused before the bump',
  );
  let looks = 0;
  const lostDuring = { expiresAt: Date.now() + 5000, holdOrLose: () => looks++ === 0 };
  await t.rejects(store.claimShard(spec.eventId, 0, 'c', lostDuring), FencedError, 'lost while the bump ran: refused');
  t.equal(looks, 2, 'the lease was looked at before the bump and again before the commit');
  t.equal(await epochNow(), first, 'and neither bump landed');
  const owner = await pool.query<{ owner: string }>('SELECT owner FROM shards WHERE event_id = $1 AND shard = 0', [spec.eventId]);
  t.equal(owner.rows[0]?.owner, 'a');
});

/** A batch that only moves customers' usage. */
function usageOnly(usage: Map<string, number>): BatchWrite {
  return { ...emptyBatchWrite(), usage };
}

t.test('event-wide customer limit: a commit that would exceed it writes nothing and names who is refused', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 1 });
  const store = new InventoryStore(pool);
  const epoch = await store.claimShard(spec.eventId, 0, 'owner');
  const check = async (usage: Record<string, number>) =>
    Object.fromEntries((await store.commitBatch(spec.eventId, 0, epoch, 4, usageOnly(new Map(Object.entries(usage))), 'unused')).refused);
  const used = async () =>
    (
      await pool.query<{ customer: string; used: number }>(
        'SELECT customer, used FROM customer_usage WHERE event_id = $1 ORDER BY customer',
        [spec.eventId],
      )
    ).rows;
  t.same(await check({ alice: 3 }), {});
  t.same(await check({ alice: 2, bob: 4 }), { alice: 3 }, 'alice would have 5 > 4 (she uses 3 now)');
  t.same(await used(), [{ customer: 'alice', used: 3 }], 'and nothing of that commit was written, not even bob');
  t.same(await check({ bob: 4 }), {}, 'without alice, the commit goes through');
  t.same(await check({ carol: 5 }), { carol: 0 }, 'growth alone beyond the limit is refused');
  t.same(await check({ alice: -2 }), {});
  t.same(await check({ alice: 3 }), {}, 'after releasing 2, alice can hold 3 more');
  t.same(await used(), [
    { customer: 'alice', used: 4 },
    { customer: 'bob', used: 4 },
  ]);
});

/**
 * Commits 30 seats of a new event in a database of its own (one earlier event of the same size,
 * analyzed as autovacuum would, then the new one) inside a transaction that is rolled back, and
 * says from the transaction's table statistics how the seats were found.
 */
async function seatReadsOfACommit(t: Test, seatsPerRow: number) {
  const pool = await ownDatabase(t, 'plan');
  const layout = testLayout({ sections: 4, rows: 50, seats: seatsPerRow });
  await provisionTestEvent(pool, { layout });
  await pool.query('ANALYZE seats');
  const spec = await provisionTestEvent(pool, { layout });
  const epoch = await new InventoryStore(pool).claimShard(spec.eventId, 0, 'owner');
  const write = emptyBatchWrite();
  foldChanges(
    write,
    Array.from(
      { length: 30 },
      (_, i) => ({ type: 'seat', seat: `B-${i + 1}-7`, state: 'held', holdId: 'h_x', fromVersion: 0, toVersion: 1 }) as const,
    ),
    Date.now(),
  );
  return rowsReadBy(t, pool, 'seats', spec.eventId, epoch, write);
}

/** Commits `write` (shard 0) in a transaction of its own, rolled back, and says how it read `table`. */
async function rowsReadBy(t: Test, pool: pg.Pool, table: string, eventId: string, epoch: number, write: BatchWrite) {
  const client = await pool.connect();
  t.teardown(() => client.release());
  await client.query('BEGIN');
  await client.query('SELECT sentinel_commit_batch($1, 0, $2, 8, $3, $4)', [eventId, epoch, 'unused', commitDocument(write, eventId, 0)]);
  const { rows } = await client.query<{ seq_scan: string; seq_tup_read: string; idx_tup_fetch: string; n_tup_upd: string }>(
    `SELECT seq_scan, seq_tup_read, idx_tup_fetch, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = $1`,
    [table],
  );
  await client.query('ROLLBACK');
  return rows[0]!;
}

// Planned with statistics from before it existed, a new event's seat write hashed all of its seats
// on every commit; provisioning analyzes (ADR 0008). And whatever the statistics, a small event's
// seats cost the planner less to hash than a hundred lookups — it takes every batch for a hundred
// rows — so the commit function plans nested loops only (migration 0003, ADR 0009): a commit reads
// the seats it writes, by their keys, whether the event has 20,000 seats or 2,000.
for (const [seatsPerRow, size] of [
  [100, '20,000'],
  [10, '2,000'],
] as const) {
  t.test(`a commit reads only its seats, not the whole event (an event of ${size} seats)`, async (t) => {
    const stats = await seatReadsOfACommit(t, seatsPerRow);
    t.equal(Number(stats.n_tup_upd), 30, 'the 30 seats were written');
    t.equal(Number(stats.seq_tup_read), 0, `no scan of the table (${JSON.stringify(stats)})`);
    t.ok(
      Number(stats.idx_tup_fetch) <= 60,
      `each seat is found by its key, not a whole shard or event hashed (${stats.idx_tup_fetch} rows read)`,
    );
  });
}

t.test('a commit that ends holds finds each by its key, however many holds are live', async (t) => {
  // Statistics taken before the sale say the event has no live holds; the partial index of live
  // holds then looked cheaper than the primary key, and every commit that ended a hold read all of
  // the event's live holds (found in a flash sale's hold-then-confirm run: 4-11 ms per commit).
  const pool = await ownDatabase(t, 'plan');
  const spec = await provisionTestEvent(pool, { layout: testLayout({ sections: 1, rows: 20, seats: 20 }), customerLimit: 8 });
  await pool.query('ANALYZE holds');
  const store = new InventoryStore(pool);
  const epoch = await store.claimShard(spec.eventId, 0, 'owner');
  const now = Date.now();
  const live = emptyBatchWrite();
  foldChanges(
    live,
    Array.from({ length: 400 }, (_, i) => {
      const hold = { holdId: `h_${i}`, customer: `c${i % 100}`, seats: [], quantity: 1, createdAt: now, expiresAt: now + 60_000 };
      return { type: 'hold-created', hold } as const;
    }),
    now,
  );
  await store.commitBatch(spec.eventId, 0, epoch, 8, live, 'unused');
  const ending = emptyBatchWrite();
  foldChanges(
    ending,
    Array.from(
      { length: 5 },
      (_, i) => ({ type: 'hold-ended', holdId: `h_${i * 7}`, customer: `c${(i * 7) % 100}`, quantity: 1, reason: 'released' }) as const,
    ),
    now + 1,
  );
  const stats = await rowsReadBy(t, pool, 'holds', spec.eventId, epoch, ending);
  t.equal(Number(stats.n_tup_upd), 5, 'the 5 holds were ended');
  t.equal(Number(stats.seq_tup_read), 0, `no scan of the table (${JSON.stringify(stats)})`);
  t.ok(Number(stats.idx_tup_fetch) <= 10, `each hold is found by its key, not all 400 live ones (${stats.idx_tup_fetch} rows read)`);
});

t.test('a commit ending 5,000 holds of as many customers takes a fraction of the statement timeout, in both functions', async (t) => {
  // Until migration 0017 both functions matched each ended hold against every row of the batch,
  // and each shrinking customer against every usage row: a commit's cost grew with the square of
  // the holds it ended. A shard claimed with thousands of holds due ended them in one commit, which
  // ran past the pool's statement timeout (10 s) at every claim, for good (measured on an idle
  // machine: 1.7-5 s at 5,000 holds, 10 s at 7,500; 0.3 and 0.5 s since).
  const pool = await ownDatabase(t, 'ends');
  const holds = 5000;
  const spec = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 200, seats: 100 }), customerLimit: 8 });
  const store = new InventoryStore(pool);
  const epoch = await store.claimShard(spec.eventId, 0, 'owner');
  const now = Date.now();
  const holdOf = (i: number) => ({
    holdId: `h_${spec.eventId}_${i}`,
    customer: `c${i}`,
    // Four adjacent seats of a row of 100: holds 0-24 in row 1, and so on.
    seats: Array.from({ length: 4 }, (_, s) => `A-${Math.floor(i / 25) + 1}-${(i % 25) * 4 + s + 1}`),
    quantity: 4,
    createdAt: now,
    expiresAt: now + 60_000,
  });
  for (let from = 0; from < holds; from += 500) {
    const write = emptyBatchWrite();
    for (let i = from; i < from + 500; i++) {
      const hold = holdOf(i);
      foldChanges(
        write,
        [
          ...hold.seats.map((seat) => ({ type: 'seat', seat, state: 'held', holdId: hold.holdId, fromVersion: 0, toVersion: 1 }) as const),
          { type: 'hold-created', hold },
        ],
        now,
      );
    }
    await store.commitBatch(spec.eventId, 0, epoch, 8, write, 'unused');
  }
  // Every hold ends in one commit: as a claim after a long time without an owner expired them before 0017.
  const endingOf = (count: number) => {
    const write = emptyBatchWrite();
    for (let i = 0; i < count; i++) {
      const { holdId, customer, seats, quantity } = holdOf(i);
      foldChanges(
        write,
        [
          ...seats.map((seat) => ({ type: 'seat', seat, state: 'available', holdId: null, fromVersion: 1, toVersion: 2 }) as const),
          { type: 'hold-ended', holdId, customer, quantity, reason: 'expired' },
        ],
        now + 60_000,
      );
    }
    return write;
  };
  const ending = endingOf(holds);
  t.equal(ending.holds.size, holds);
  t.equal(ending.usage.size, holds, 'every customer shrinks');
  // Well under the pool's 10 s on a loaded machine; 0.3 s on an idle one.
  const limitMs = 3000;

  // The commit of several shards' function, in a transaction rolled back: the same rows, in its document.
  const client = await pool.connect();
  t.teardown(() => client.release());
  const rolledBack = async (batch: BatchWrite) => {
    await client.query('BEGIN');
    const began = performance.now();
    await client.query('SELECT sentinel_commit_shards($1, 8, $2, $3)', [
      spec.eventId,
      'unused',
      shardsDocument([{ shard: 0, epoch, batch }], spec.eventId),
    ]);
    const ms = performance.now() - began;
    await client.query('ROLLBACK');
    return ms;
  };
  const tenthMs = await rolledBack(endingOf(holds / 10));
  const togetherMs = await rolledBack(ending);
  t.ok(togetherMs < limitMs, `sentinel_commit_shards ended ${holds} holds in ${Math.round(togetherMs)} ms`);
  // The shape of the cost, which a fast machine's absolute figure could hide: ten times the holds
  // cost about ten times as much in proportion (the square: a hundred times). 30 leaves room for noise.
  t.ok(
    togetherMs < 30 * tenthMs,
    `ten times the holds, ${(togetherMs / tenthMs).toFixed(1)} times the time (${Math.round(tenthMs)} ms for ${holds / 10})`,
  );

  // The single-shard function, for real.
  const started = performance.now();
  await store.commitBatch(spec.eventId, 0, epoch, 8, ending, 'unused');
  const aloneMs = performance.now() - started;
  t.ok(aloneMs < limitMs, `sentinel_commit_batch ended ${holds} holds in ${Math.round(aloneMs)} ms`);
  const { rows } = await pool.query<{ state: string; n: number; ended: number }>(
    'SELECT state, count(*)::int AS n, count(ended_at)::int AS ended FROM holds WHERE event_id = $1 GROUP BY state',
    [spec.eventId],
  );
  t.same(rows, [{ state: 'expired', n: holds, ended: holds }], 'every hold ended, as expired, with its end time');
  const usage = await pool.query<{ used: number; n: number }>(
    'SELECT sum(used)::int AS used, count(*)::int AS n FROM customer_usage WHERE event_id = $1',
    [spec.eventId],
  );
  t.same(usage.rows, [{ used: 0, n: holds }], "every customer's usage shrank to 0");
  const seats = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM seats WHERE event_id = $1 AND state <> 'available'`, [
    spec.eventId,
  ]);
  t.equal(seats.rows[0]!.n, 0, 'every seat is available again');
});

t.test("a shard's rebuild reads its own ended holds, not every hold ever made", async (t) => {
  // Before migration 0011 no index served this read: every claim scanned the whole holds table,
  // which keeps every hold of every past event.
  const pool = await ownDatabase(t, 'ended');
  const [old, mine] = [await provisionTestEvent(pool), await provisionTestEvent(pool)];
  const past = 20_000;
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, quantity, state, created_at, expires_at, ended_at)
     SELECT $1 || i, $2, i % 2, 'c', 1, 'released', now(), now(), now() FROM generate_series(1, $3) AS i`,
    [`${old.eventId}-`, old.eventId, past],
  );
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, quantity, state, created_at, expires_at, ended_at)
     SELECT $1 || i, $2, 0, 'c', 1, 'expired', now(), now(), now() FROM generate_series(1, 3) AS i`,
    [`${mine.eventId}-`, mine.eventId],
  );
  await pool.query('ANALYZE holds');
  const { rows } = await pool.query<{ 'QUERY PLAN': [{ Plan: Record<string, number> }] }>(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${ENDED_HOLDS_QUERY}`,
    [mine.eventId, 0, new Date(Date.now() - 3_600_000)],
  );
  const plan = rows[0]!['QUERY PLAN'][0].Plan;
  t.equal(plan['Actual Rows'], 3, "the shard's three ended holds");
  const pages = plan['Shared Hit Blocks']! + plan['Shared Read Blocks']!;
  t.ok(pages < 20, `read ${pages} pages with ${past} holds of another event in the table`);
});

t.test('commits of different shards touching the same customers in any order never deadlock', async (t) => {
  // The usage counters are the one table every shard writes. Found in a benchmark: two commits
  // locking the same customers' rows in opposite orders deadlocked, and Postgres broke the tie
  // only after deadlock_timeout (1 s), failing a commit and stalling its shard.
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const shards = 4;
  const spec = await provisionTestEvent(pool, { shardCount: shards, customerLimit: 100_000 });
  const store = new InventoryStore(pool);
  const epochs = await Promise.all(Array.from({ length: shards }, (_, shard) => store.claimShard(spec.eventId, shard, `owner-${shard}`)));
  const customers = Array.from({ length: 12 }, (_, i) => `c${i}`);
  // Everyone starts with some usage, so shrinking is possible from the first round.
  await store.commitBatch(spec.eventId, 0, epochs[0]!, 1_000_000, usageOnly(new Map(customers.map((c) => [c, 1000]))), 'unused');
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
          await store.commitBatch(spec.eventId, shard, epochs[shard]!, 1_000_000, usageOnly(usage), 'unused');
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

t.test('which sales are over, and which of their shards still have live holds to settle', async (t) => {
  // A database of its own: the shared one has other tests' live holds.
  const pool = await ownDatabase(t, 'plan');
  const store = new InventoryStore(pool);
  const now = Date.now();
  const at = (ms: number) => new Date(now + ms);
  const layout = testLayout({ rows: 6, seats: 4 });
  const onSale = await provisionTestEvent(pool, { layout, shardCount: 3 });
  const pastClose = await provisionTestEvent(pool, { layout, shardCount: 3, saleOpensAt: at(-120_000), saleClosesAt: at(-1_000) });
  const postponed = await provisionTestEvent(pool, { layout, shardCount: 3, saleOpensAt: at(3_600_000), saleClosesAt: at(7_200_000) });
  const closedEarly = await provisionTestEvent(pool, { layout, shardCount: 3 });
  await closeEvent(pool, closedEarly.eventId);

  /** Live holds on a shard (and one ended, when `ended`), written as its owner's commit would. */
  const holds = async (eventId: string, shard: number, ended = false, expiresIn = 60_000) => {
    const epoch = await store.claimShard(eventId, shard, 'owner');
    const hold = { holdId: `h_${eventId}_${shard}`, customer: 'c', seats: [], quantity: 1, createdAt: now, expiresAt: now + expiresIn };
    const write = emptyBatchWrite();
    foldChanges(
      write,
      [
        { type: 'hold-created', hold },
        ...(ended ? [{ type: 'hold-ended', holdId: hold.holdId, customer: 'c', quantity: 1, reason: 'released' } as const] : []),
      ],
      now,
    );
    await store.commitBatch(eventId, shard, epoch, 8, write, 'unused');
  };
  await holds(onSale.eventId, 0);
  await holds(onSale.eventId, 2);
  await holds(pastClose.eventId, 1);
  await holds(pastClose.eventId, 0, true);
  await holds(postponed.eventId, 0);
  await holds(postponed.eventId, 1, false, -1_000); // due: nobody serves the postponed sale to expire it
  await holds(closedEarly.eventId, 2);

  const ids = [onSale, pastClose, postponed, closedEarly].map((s) => s.eventId);
  t.same(
    [...(await store.closedEvents([...ids, 'no-such-event'], new Date(now)))].sort(),
    [pastClose.eventId, closedEarly.eventId, 'no-such-event'].sort(),
    'past its close, closed, or gone — not on sale, nor merely not open yet',
  );
  t.same(
    await store.shardsToSettle(new Date(now)),
    [
      { eventId: pastClose.eventId, shard: 1, over: true },
      { eventId: closedEarly.eventId, shard: 2, over: true },
      { eventId: postponed.eventId, shard: 1, over: false },
    ].sort((a, b) => (a.eventId < b.eventId ? -1 : 1)),
    "the over sales' shards that still have a live hold, and the postponed sale's shard with a hold due",
  );
});

t.test("a shard counts as owned while its owner's heartbeat lasts, not while Postgres merely names it", async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const store = new InventoryStore(pool);
  const spec = await provisionTestEvent(pool, { layout: testLayout({ rows: 4, seats: 10 }), shardCount: 2 });
  const [alive, crashed] = [uniqueName('engine'), uniqueName('engine')];
  await store.claimShard(spec.eventId, 0, alive);
  await store.claimShard(spec.eventId, 1, crashed);
  const owned = async () => (await inventoryCounts(pool, spec.eventId))?.shards.owned;
  t.equal(await owned(), 0, 'named, but neither engine was ever seen');
  await store.engineSeen(alive, 60_000);
  await store.engineSeen(crashed, 60_000);
  t.equal(await owned(), 2);
  // The crashed one's last heartbeat runs out.
  await store.engineSeen(crashed, 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(await owned(), 1, 'its shard is named still, but no longer counts as owned');
  await store.engineGone(alive);
  t.equal(await owned(), 0, 'an engine that stopped counts for nothing');
  t.equal((await pool.query('SELECT 1 FROM engine_heartbeats WHERE engine_id = $1', [alive])).rowCount, 0, 'its row is gone');
  await store.engineGone(crashed);
});
