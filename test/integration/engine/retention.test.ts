/**
 * Retention against the real Postgres: what goes, what stays, and one pass at a time. Each test has
 * a database of its own: a pass deletes across every event, and its advisory lock is per database
 * (engines of other tests run against the shared one).
 */
import t from 'tap';
import { checkout } from '../../../src/adapters/postgres/pool.js';
import { IDEMPOTENCY_MARGIN_MS, prunePass, Retention, type RetentionOptions } from '../../../src/engine/retention.js';
import { silentLogger } from '../../../src/log.js';
import { ownDatabase, provisionTestEvent, testLayout } from '../../support/stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const OPTIONS: RetentionOptions = { idempotencyTtlMs: DAY, outboxRetentionMs: 7 * DAY, batchSize: 5, pauseMs: 0, maxRows: 1_000_000 };

t.test('a pass deletes expired idempotency keys and old published outbox rows, and nothing else', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const { eventId } = await provisionTestEvent(pool, { shardCount: 2, layout: testLayout({ rows: 2, seats: 2 }) });
  const now = Date.now();
  const at = (ms: number) => new Date(now - ms);
  const keys = async (created: Date, prefix: string, n: number) =>
    pool.query(
      `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
       SELECT $1, i % 2, $2 || i, 'c' || i, 'fp', '{"ok":true}'::jsonb, $3 FROM generate_series(1, $4) AS i`,
      [eventId, prefix, created, n],
    );
  await keys(at(DAY + IDEMPOTENCY_MARGIN_MS + HOUR), 'expired-', 12); // past the window and its margin
  await keys(at(DAY + IDEMPOTENCY_MARGIN_MS - HOUR), 'margin-', 3); // past the window, within the margin
  await keys(at(HOUR), 'fresh-', 4);
  const outbox = async (created: Date, published: Date | null, prefix: string, n: number) =>
    pool.query(
      `INSERT INTO outbox (event_id, topic, message_key, payload, created_at, published_at)
       SELECT $1, 'retention.test', $2 || i, '{}'::jsonb, $3, $4 FROM generate_series(1, $5) AS i`,
      [eventId, prefix, created, published, n],
    );
  await outbox(at(9 * DAY), at(8 * DAY), 'old-', 7);
  await outbox(at(40 * DAY), null, 'stuck-', 6); // never published: kept however old, and stepped over
  await outbox(at(9 * DAY), at(8 * DAY), 'old-after-stuck-', 4);
  await outbox(at(6 * DAY), at(6 * DAY), 'recent-', 3);

  const pass = await prunePass(pool, OPTIONS, now);
  t.ok(pass.ran);
  const left = async (table: string, column: string) =>
    (
      await pool.query<{ prefix: string; n: number }>(
        `SELECT regexp_replace(${column}, '[0-9]+$', '') AS prefix, count(*)::int AS n FROM ${table} WHERE event_id = $1 GROUP BY 1 ORDER BY 1`,
        [eventId],
      )
    ).rows.map((r) => `${r.prefix}${r.n}`);
  t.same(await left('idempotency_keys', 'key'), ['fresh-4', 'margin-3'], 'keys past the window and its margin went, in batches of 5');
  t.same(await left('outbox', 'message_key'), ['recent-3', 'stuck-6'], 'old published rows went, also those after never-published ones');
  t.same(pass, { ran: true, idempotencyKeys: 12, outbox: 11 }, 'and counted');

  const again = await prunePass(pool, OPTIONS, now);
  t.same(again, { ran: true, idempotencyKeys: 0, outbox: 0 }, 'nothing left to delete');
});

t.test('a pass stops after maxRows, and the next one goes on', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const { eventId } = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 1, seats: 2 }) });
  const now = Date.now();
  await pool.query(
    `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
     SELECT $1, 0, 'k' || i, 'c', 'fp', '{}'::jsonb, $2 FROM generate_series(1, 23) AS i`,
    [eventId, new Date(now - 3 * DAY)],
  );
  const count = async () =>
    (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM idempotency_keys WHERE event_id = $1', [eventId])).rows[0]!.n;
  const passes = [];
  for (let i = 0; i < 4; i++) passes.push(await prunePass(pool, { ...OPTIONS, maxRows: 8 }, now));
  t.same(
    passes.map((p) => (p.ran ? p.idempotencyKeys : -1)),
    [8, 8, 7, 0],
    'at most 8 a pass (batches of 5, the last one cut to what is left of the 8)',
  );
  t.equal(await count(), 0, 'all gone, over three passes');
});

t.test('one pass at a time: another engine holding the lock skips its pass', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const client = await checkout(pool, 'lock holder');
  t.teardown(() => client.release());
  const held = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock('7338036226151645793'::bigint) AS locked`);
  t.equal(held.rows[0]?.locked, true, 'the test holds the lock');
  t.same(await prunePass(pool, OPTIONS, Date.now()), { ran: false }, 'skipped while the lock is held');
  await client.query(`SELECT pg_advisory_unlock('7338036226151645793'::bigint)`);
  t.ok((await prunePass(pool, OPTIONS, Date.now())).ran, 'runs once it is free');
  // The pass gave the lock back: a session can take it again.
  const after = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock('7338036226151645793'::bigint) AS locked`);
  t.equal(after.rows[0]?.locked, true, 'the pass released the lock');
  await client.query(`SELECT pg_advisory_unlock('7338036226151645793'::bigint)`);
});

t.test('the loop runs passes on its interval, counts what they delete, and stops', async (t) => {
  const pool = await ownDatabase(t, 'retention');
  const { eventId } = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 1, seats: 2 }) });
  await pool.query(
    `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
     SELECT $1, 0, 'k' || i, 'c', 'fp', '{}'::jsonb, $2 FROM generate_series(1, 3) AS i`,
    [eventId, new Date(Date.now() - 3 * DAY)],
  );
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
  t.ok((deleted['idempotency_keys'] ?? 0) >= 3, `counted ${JSON.stringify(deleted)}`);
  const left = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM idempotency_keys WHERE event_id = $1', [eventId]);
  t.equal(left.rows[0]?.n, 0);
});
