/**
 * Retention against the real Postgres: what goes, what stays, whose window applies, the budgets and
 * the cursor, the lock per group of engines, and verify refusing a pruned event. Each test has a database of its own: a pass deletes
 * across every event, and its advisory lock is per database (engines of other tests run against
 * the shared one).
 */
import t from 'tap';
import type pg from 'pg';
import { checkout } from '../../../src/adapters/postgres/pool.js';
import { IDEMPOTENCY_MARGIN_MS, prunePass, Retention, type RetentionOptions, type RetentionPass } from '../../../src/engine/retention.js';
import { verifyEvent } from '../../../src/jobs/verify/verify.js';
import { silentLogger } from '../../../src/log.js';
import { ownDatabase, provisionTestEvent, testLayout } from '../../support/stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const OPTIONS: RetentionOptions = {
  eventFilter: '',
  idempotencyTtlMs: DAY,
  outboxRetentionMs: 7 * DAY,
  batchSize: 5,
  pauseMs: 0,
  maxRows: 1_000_000,
  maxScanned: 1_000_000,
};

/** An event whose sale opened `openedAgo` ms ago (so keys that old can exist). */
async function event(pool: pg.Pool, openedAgo = 60 * DAY): Promise<string> {
  const now = Date.now();
  const spec = await provisionTestEvent(pool, {
    shardCount: 2,
    layout: testLayout({ rows: 2, seats: 2 }),
    saleOpensAt: new Date(now - openedAgo),
    saleClosesAt: new Date(now + DAY),
  });
  return spec.eventId;
}

const keys = (pool: pg.Pool, eventId: string, created: Date, prefix: string, n: number) =>
  pool.query(
    `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
     SELECT $1, i % 2, $2 || i, 'c' || i, 'fp', '{"ok":true}'::jsonb, $3 FROM generate_series(1, $4) AS i`,
    [eventId, prefix, created, n],
  );

const outbox = (pool: pg.Pool, eventId: string, created: Date, published: Date | null, prefix: string, n: number) =>
  pool.query(
    `INSERT INTO outbox (event_id, topic, message_key, payload, created_at, published_at)
     SELECT $1, 'retention.test', $2 || i, '{}'::jsonb, $3, $4 FROM generate_series(1, $5) AS i`,
    [eventId, prefix, created, published, n],
  );

/** What is left of an event's rows in `table`, as `prefix<count>` by the prefix of `column`. */
async function left(pool: pg.Pool, table: string, column: string, eventId: string): Promise<string[]> {
  const { rows } = await pool.query<{ prefix: string; n: number }>(
    `SELECT regexp_replace(${column}, '[0-9]+$', '') AS prefix, count(*)::int AS n FROM ${table} WHERE event_id = $1 GROUP BY 1 ORDER BY 1`,
    [eventId],
  );
  return rows.map((r) => `${r.prefix}${r.n}`);
}

/** A pass's counts, without where it stopped among the keys. */
const counts = (pass: RetentionPass) =>
  pass.ran ? { idempotencyKeys: pass.idempotencyKeys, outbox: pass.outbox, failed: pass.failed } : 'skipped';

const prunedAt = async (pool: pg.Pool, eventId: string) =>
  (await pool.query<{ pruned_at: Date | null }>('SELECT pruned_at FROM events WHERE id = $1', [eventId])).rows[0]?.pruned_at ?? null;

t.test('a pass deletes expired idempotency keys and old published outbox rows, and nothing else', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const eventId = await event(pool);
  const untouched = await event(pool);
  const now = Date.now();
  const at = (ms: number) => new Date(now - ms);
  await keys(pool, eventId, at(DAY + IDEMPOTENCY_MARGIN_MS + HOUR), 'expired-', 12); // past the window and its margin
  await keys(pool, eventId, at(DAY + IDEMPOTENCY_MARGIN_MS - HOUR), 'margin-', 3); // past the window, within the margin
  await keys(pool, eventId, at(HOUR), 'fresh-', 4);
  await keys(pool, untouched, at(HOUR), 'fresh-', 2);
  // Along the primary key, oldest first: old rows, rows never published (stepped over), old rows,
  // one written long ago but published lately, recent rows (the frontier) — and old rows after it,
  // which wait for a later pass (the walk stops at the frontier).
  await outbox(pool, eventId, at(9 * DAY), at(8 * DAY), 'old-', 7);
  await outbox(pool, eventId, at(40 * DAY), null, 'stuck-', 6);
  await outbox(pool, eventId, at(9 * DAY), at(8 * DAY), 'old-after-stuck-', 4);
  await outbox(pool, eventId, at(30 * DAY), at(2 * DAY), 'published-late-', 1);
  await outbox(pool, eventId, at(6 * DAY), at(6 * DAY), 'recent-', 3);
  await outbox(pool, eventId, at(9 * DAY), at(8 * DAY), 'old-after-frontier-', 2);

  const pass = await prunePass(pool, OPTIONS, now, silentLogger);
  t.same(counts(pass), { idempotencyKeys: 12, outbox: 11, failed: 0 });
  t.equal(pass.ran && pass.resume, undefined, 'it read every event to the end');
  t.same(await left(pool, 'idempotency_keys', 'key', eventId), ['fresh-4', 'margin-3'], 'keys past the window and its margin went');
  t.same(
    await left(pool, 'outbox', 'message_key', eventId),
    ['old-after-frontier-2', 'published-late-1', 'recent-3', 'stuck-6'],
    'old published rows up to the frontier went, also those after never-published ones',
  );
  t.ok(await prunedAt(pool, eventId), 'the event is stamped as pruned');
  t.equal(await prunedAt(pool, untouched), null, 'an event with nothing deleted is not');

  const again = await prunePass(pool, OPTIONS, now, silentLogger);
  t.same(counts(again), { idempotencyKeys: 0, outbox: 0, failed: 0 }, 'nothing left to delete before the frontier');
});

t.test("an engine applies its own window to the events it serves, the longest any engine may have to others'", async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const mine = await event(pool);
  const theirs = await event(pool);
  const recent = await event(pool, HOUR); // opened an hour ago: not even read
  const now = Date.now();
  for (const eventId of [mine, theirs]) {
    await keys(pool, eventId, new Date(now - 3 * DAY), 'days-', 2);
    await keys(pool, eventId, new Date(now - 31 * DAY - IDEMPOTENCY_MARGIN_MS), 'month-', 2);
  }
  await keys(pool, recent, new Date(now - 3 * DAY), 'days-', 2); // cannot happen: shows it is not read
  const pass = await prunePass(pool, { ...OPTIONS, eventFilter: mine }, now, silentLogger);
  t.same(counts(pass), { idempotencyKeys: 6, outbox: 0, failed: 0 });
  t.same(await left(pool, 'idempotency_keys', 'key', mine), [], 'its own event: past its 1-day window');
  t.same(await left(pool, 'idempotency_keys', 'key', theirs), ['days-2'], "another event's: only past 30 days");
  const all = await prunePass(pool, OPTIONS, now, silentLogger);
  t.same(counts(all), { idempotencyKeys: 2, outbox: 0, failed: 0 }, 'an engine serving every event: its window for all of them');
  t.same(await left(pool, 'idempotency_keys', 'key', theirs), [], 'so the other event goes now');
  t.same(await left(pool, 'idempotency_keys', 'key', recent), ['days-2'], 'but an event opened within the window is not read at all');
});

t.test('a pass stops after maxRows or maxScanned, and the next one goes on', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const eventId = await event(pool);
  const now = Date.now();
  await keys(pool, eventId, new Date(now - 3 * DAY), 'k', 23);
  const passes = [];
  for (let i = 0; i < 4; i++) passes.push(await prunePass(pool, { ...OPTIONS, maxRows: 8 }, now, silentLogger));
  t.same(
    passes.map((p) => (p.ran ? p.idempotencyKeys : -1)),
    [8, 8, 7, 0],
    'at most 8 a pass (batches of 5, the last one cut to what is left of the 8)',
  );
  await outbox(pool, eventId, new Date(now - 40 * DAY), null, 'stuck-', 20);
  await outbox(pool, eventId, new Date(now - 9 * DAY), new Date(now - 8 * DAY), 'old-', 5);
  await keys(pool, eventId, new Date(now - 3 * DAY), 'k', 2);
  const scanned = await prunePass(pool, { ...OPTIONS, maxScanned: 12 }, now, silentLogger);
  t.same(
    counts(scanned),
    { idempotencyKeys: 2, outbox: 0, failed: 0 },
    'reading 12 rows: the outbox walk, half of them, got no further than unpublished ones; the keys had the rest',
  );
  t.same(await left(pool, 'outbox', 'message_key', eventId), ['old-5', 'stuck-20']);
  const next = await prunePass(pool, OPTIONS, now, silentLogger);
  t.same(counts(next), { idempotencyKeys: 0, outbox: 5, failed: 0 }, 'a pass with room gets past them');
});

t.test('a pass that runs out of room goes on from where the last one stopped', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const eventId = await event(pool);
  const now = Date.now();
  // Along the primary key (one shard): ten keys still in the window, then ten expired ones.
  for (const [prefix, age] of [
    ['a', HOUR],
    ['b', 3 * DAY],
  ] as const) {
    await pool.query(
      `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
       SELECT $1, 0, $2 || i, 'c', 'fp', '{}'::jsonb, $3 FROM generate_series(0, 9) AS i`,
      [eventId, prefix, new Date(now - age)],
    );
  }
  const first = await prunePass(pool, { ...OPTIONS, maxScanned: 12 }, now, silentLogger);
  t.same(counts(first), { idempotencyKeys: 2, outbox: 0, failed: 0 }, 'the first pass read the ten young keys and two old ones');
  t.match(first.ran && first.resume, { eventId, after: [0, 'b1', 'c'] }, 'and says where it stopped');
  const second = await prunePass(pool, { ...OPTIONS, maxScanned: 12 }, now, silentLogger, { resume: first.ran ? first.resume : undefined });
  t.same(counts(second), { idempotencyKeys: 8, outbox: 0, failed: 0 }, 'the next goes on from there, not from the young keys again');
  t.equal(second.ran && second.resume, undefined, 'and reached the end');
});

t.test("a batch of another engine of the group under way ends the pass; another group's engines go on", async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const eventId = await event(pool);
  await keys(pool, eventId, new Date(Date.now() - 3 * DAY), 'k', 3);
  const other = await checkout(pool, 'lock holder');
  t.teardown(() => other.release());
  await other.query('BEGIN');
  const held = await other.query<{ locked: boolean }>("SELECT pg_try_advisory_xact_lock(hashtext('sentinel.retention:' || '')) AS locked");
  t.equal(held.rows[0]?.locked, true, "another engine's batch holds the lock of the group of engines serving every event");
  t.same(counts(await prunePass(pool, OPTIONS, Date.now(), silentLogger)), 'skipped', 'skipped while it is held');
  t.ok((await prunePass(pool, { ...OPTIONS, eventFilter: eventId }, Date.now(), silentLogger)).ran, 'another group prunes meanwhile');
  await other.query('COMMIT');
  await keys(pool, eventId, new Date(Date.now() - 3 * DAY), 'again-', 3);
  t.same(
    counts(await prunePass(pool, OPTIONS, Date.now(), silentLogger)),
    { idempotencyKeys: 3, outbox: 0, failed: 0 },
    'runs once it is free',
  );
});

t.test('the loop runs passes on its interval, counts what they delete, and stops', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const eventId = await event(pool);
  await keys(pool, eventId, new Date(Date.now() - 3 * DAY), 'k', 3);
  const deleted: Record<string, number> = {};
  const retention = new Retention({
    pool,
    options: OPTIONS,
    intervalMs: 50,
    log: silentLogger,
    onDeleted: (table, rows) => (deleted[table] = (deleted[table] ?? 0) + rows),
  });
  retention.start();
  const deadline = Date.now() + 10_000;
  while ((deleted['idempotency_keys'] ?? 0) < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  await retention.stop();
  t.equal(deleted['idempotency_keys'], 3, `counted ${JSON.stringify(deleted)}`);
  t.same(await left(pool, 'idempotency_keys', 'key', eventId), []);
});

/** Verify of the event over Postgres alone (no topic, no response log). */
const verifyOptions = (pool: pg.Pool, eventId: string) => ({
  eventId,
  pool,
  logs: [],
  kafka: undefined,
  ttlSlackMs: 1000,
  settleTimeoutMs: 1000,
  topicTimeoutMs: 1000,
  log: silentLogger,
});

t.test('verify refuses to judge an event the retention pruned (exit 3), rather than report missing rows', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const eventId = await event(pool);
  await outbox(pool, eventId, new Date(Date.now() - 9 * DAY), new Date(Date.now() - 8 * DAY), 'old-', 1);
  await prunePass(pool, OPTIONS, Date.now(), silentLogger);
  await t.rejects(verifyEvent(verifyOptions(pool, eventId)), {
    name: 'PrunedEventError',
    message: new RegExp(`event ${eventId} can no longer be verified: the engines' retention has deleted some of its records`),
  });
});

t.test('verify looks at the stamp again inside its snapshot: a pass while it read the topic', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const eventId = await event(pool);
  await t.rejects(
    verifyEvent({
      ...verifyOptions(pool, eventId),
      // Read just before the snapshot opens: retention stamps the event in between.
      leases: async () => {
        await pool.query('UPDATE events SET pruned_at = now() WHERE id = $1', [eventId]);
        return new Set<number>();
      },
    }),
    { name: 'PrunedEventError' },
  );
});
