/**
 * Row locks nobody can keep for long: a session stopped inside a transaction is ended by the server
 * (the pool's idle-in-transaction limit, and a claim's own, shorter one), and the operator's
 * reconcile does not lock the event row against the commits of its sale.
 */
import t, { type Test } from 'tap';
import pg from 'pg';
import { createPgPool, IDLE_IN_TRANSACTION_TIMEOUT_MS } from '../../../src/adapters/postgres/pool.js';
import { InventoryStore } from '../../../src/adapters/postgres/inventory-store.js';
import { provisionEvent } from '../../../src/engine/provision.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { provisionTestEvent, sleep, testDatabase } from '../../support/stack.js';

/** Blocks this thread — timers, sockets, everything — for `ms`, as a SIGSTOP would. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A connection of its own, outside any pool: it sends a query at once, even while this thread is frozen after. */
async function lone(t: Test): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: testConfig().databaseUrl });
  await client.connect();
  t.teardown(() => client.end());
  return client;
}

/** Takes the shard's row lock, waiting for it as a commit would: answers when the server granted it. */
async function lockShardRow(client: pg.Client, eventId: string): Promise<number> {
  const { rows } = await client.query<{ at: Date }>(
    'UPDATE shards SET owner = owner WHERE event_id = $1 AND shard = 0 RETURNING clock_timestamp() AS at',
    [eventId],
  );
  return rows[0]!.at.getTime();
}

t.test("the pool's sessions are ended by the server when they sit idle inside a transaction", async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const { rows } = await pool.query<{ limit: string }>('SELECT setting::int AS limit FROM pg_settings WHERE name = $1', [
    'idle_in_transaction_session_timeout',
  ]);
  t.equal(Number(rows[0]!.limit), IDLE_IN_TRANSACTION_TIMEOUT_MS, 'the default limit is set on every session');

  const spec = await provisionTestEvent(pool, { shardCount: 1 });
  const short = createPgPool({ url: testConfig().databaseUrl, max: 1, log: silentLogger, idleInTransactionTimeoutMs: 300 });
  t.teardown(() => short.end());
  const stuck = await short.connect();
  stuck.on('error', () => undefined);
  await stuck.query('BEGIN');
  await stuck.query('UPDATE shards SET owner = owner WHERE event_id = $1 AND shard = 0', [spec.eventId]);
  const other = await lone(t);
  await other.query("SET lock_timeout = '3s'");
  const started = Date.now();
  await lockShardRow(other, spec.eventId);
  t.ok(Date.now() - started < 2000, `the row was free again ${Date.now() - started} ms later`);
  await t.rejects(stuck.query('SELECT 1'), 'the stuck session was ended');
  stuck.release(true);
});

for (const blockMs of [0, 600]) {
  t.test(`a claimer stopped after its bump keeps the shard row no longer than its lease (its bump waited ${blockMs} ms)`, async (t) => {
    const pool = await testDatabase();
    t.teardown(() => pool.end());
    const spec = await provisionTestEvent(pool, { shardCount: 1 });
    const store = new InventoryStore(pool);
    const before = await store.claimShard(spec.eventId, 0, 'first');
    const waiter = await lone(t);
    let looks = 0;
    let waited: Promise<number> | undefined;
    let thawedAt = 0;
    const leaseMs = 1250;
    const lease = {
      expiresAt: Date.now() + leaseMs,
      holdOrLose: () => {
        if (++looks === 2) {
          // After the bump, before the commit: a commit of the shard queues on its row, and the
          // claimer stops for twice its lease.
          waited = lockShardRow(waiter, spec.eventId);
          freeze(2 * leaseMs);
          thawedAt = Date.now();
        }
        return true;
      },
    };
    if (blockMs > 0) {
      // A commit holds the row when the claim comes: the bump waits for it, and the time it may then
      // sit idle is what is left of the lease, not the whole of it again.
      const commit = await lone(t);
      await commit.query('BEGIN');
      await lockShardRow(commit, spec.eventId);
      setTimeout(() => void commit.query('COMMIT'), blockMs);
    }
    // The claimer looked at its lease's time before it stopped: it goes on to commit, and finds its
    // session ended — the claim fails either way.
    await t.rejects(store.claimShard(spec.eventId, 0, 'paused', lease), { message: /idle-in-transaction timeout/ }, 'the claim failed');
    t.equal(looks, 2, 'stopped between the bump and the commit');
    const grantedAt = await waited!;
    t.ok(grantedAt < thawedAt - leaseMs / 2, `the row was granted ${thawedAt - grantedAt} ms before the claimer went on`);
    t.ok(grantedAt < lease.expiresAt, `and ${lease.expiresAt - grantedAt} ms before its lease ran out`);
    const { rows } = await pool.query<{ epoch: string; owner: string }>(
      'SELECT epoch, owner FROM shards WHERE event_id = $1 AND shard = 0',
      [spec.eventId],
    );
    t.same(rows[0], { epoch: String(before), owner: 'first' }, 'the bump was rolled back');
  });
}

t.test("a reconcile during a sale does not wait for the sale's commits (nor they for it: the locks do not conflict)", async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 1 });
  // What a commit inserting a hold holds for its foreign key until it commits.
  const commit = await lone(t);
  await commit.query('BEGIN');
  await commit.query('SELECT 1 FROM events WHERE id = $1 FOR KEY SHARE', [spec.eventId]);
  const started = Date.now();
  const outcome = await Promise.race([provisionEvent(pool, spec), sleep(3000).then(() => 'still waiting')]);
  t.same(outcome, { status: 'unchanged' }, `provisioned in ${Date.now() - started} ms`);
  await commit.query('ROLLBACK');
});
