import t, { type Test } from 'tap';
import type pg from 'pg';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardResult } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { ShardDriver } from '../../support/shard-driver.js';
import { provisionTestEvent, sleep, startEngine, testDatabase, testLayout, waitFor, type EngineProcess } from '../../support/stack.js';

/** A live event with 2 shards (the seats on one, a pool on the other), live holds on both, and one sale. */
async function saleWithHolds(t: Test, firstEngineEnv: Record<string, string> = {}) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'close-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount: 2, layout: testLayout({ rows: 4, seats: 10, pool: 50 }) });
  const driver = new ShardDriver(nc, spec);
  const engines: EngineProcess[] = [];
  t.teardown(async () => {
    for (const e of engines) await e.stop();
  });
  const start = async (env: Record<string, string> = {}) => {
    const engine = await startEngine(spec.eventId, env);
    engines.push(engine);
    return engine;
  };
  const engine = await start(firstEngineEnv);
  await waitFor('both shards served', async () => (await engine.metric('sentinel_engine_owned_shards')) === 2);

  const ok = async (result: Promise<ShardResult>) => {
    const r = await result;
    if (!r.ok) throw new Error(`unexpected refusal: ${JSON.stringify(r)}`);
    return r;
  };
  const [a, b, c] = driver.map.seatsOfShard(0);
  t.equal(driver.map.shardOfPool('GA'), 1, 'the pool is on the other shard');
  await ok(driver.send({ type: 'hold', key: 'h-a', customer: 'ann', seats: [a!] }));
  await ok(driver.send({ type: 'hold', key: 'h-b', customer: 'bob', seats: [b!] }));
  await ok(driver.send({ type: 'hold-pool', key: 'h-ga', customer: 'cy', pool: 'GA', quantity: 3 }));
  const sold = await ok(driver.send({ type: 'reserve', key: 'r-1', customer: 'dee', seat: c! }));
  t.equal(sold.type, 'confirmed');
  return { pool, spec, engine, start };
}

async function state(pool: pg.Pool, eventId: string) {
  const { rows } = await pool.query<{
    live: number;
    expired: number;
    confirmed: number;
    held: number;
    sold: number;
    pool_held: number;
    owned: number;
  }>(
    `SELECT (SELECT count(*) FILTER (WHERE state = 'live') FROM holds WHERE event_id = $1)::int AS live,
            (SELECT count(*) FILTER (WHERE state = 'expired' AND ended_at < expires_at) FROM holds WHERE event_id = $1)::int AS expired,
            (SELECT count(*) FILTER (WHERE state = 'confirmed') FROM holds WHERE event_id = $1)::int AS confirmed,
            (SELECT count(*) FILTER (WHERE state = 'held') FROM seats WHERE event_id = $1)::int AS held,
            (SELECT count(*) FILTER (WHERE state = 'sold') FROM seats WHERE event_id = $1)::int AS sold,
            (SELECT coalesce(sum(held), 0) FROM pools WHERE event_id = $1)::int AS pool_held,
            (SELECT count(owner) FROM shards WHERE event_id = $1)::int AS owned`,
    [eventId],
  );
  return rows[0]!;
}

const closeSale = (pool: pg.Pool, eventId: string) =>
  pool.query(`UPDATE events SET sale_closes_at = now(), version = version + 1, updated_at = now() WHERE id = $1`, [eventId]);

t.test("a sale's close ends its live holds: the owner commits them expired as it hands off, a commit per hold at most", async (t) => {
  // One command per group commit: the three holds end in three commits after the last decision's.
  const { pool, spec, engine } = await saleWithHolds(t, { SENTINEL_BATCH_MAX: '1' });
  t.match(await state(pool, spec.eventId), { live: 3, held: 2, sold: 1, pool_held: 3, owned: 2 });
  const logged = engine.logs.length;
  await closeSale(pool, spec.eventId);
  // Not the owned-shards gauge: it drops as a closed sale's hand-off starts, before its commits.
  const handedOff = () => engine.logs.slice(logged).filter((l) => /Handed off shard/.test(l) && /"reason":"closed"/.test(l)).length;
  await waitFor('both shards handed off', async () => handedOff() >= 2);
  t.same(
    await state(pool, spec.eventId),
    { live: 0, expired: 3, confirmed: 1, held: 0, sold: 1, pool_held: 0, owned: 0 },
    'the holds expired with the sale, their seats and places are free, the sale stands',
  );
  t.equal(await engine.metric('sentinel_engine_owned_shards'), 0, 'it serves neither');
  const since = engine.logs.slice(logged);
  t.equal(handedOff(), 2, 'both handed off as closed');
  t.notOk(
    since.some((l) => /Claimed shard/.test(l)),
    'by the owner itself, not by settling',
  );
});

t.test("an owner killed at the close: another engine settles the closed sale's shards", async (t) => {
  const { pool, spec, engine, start } = await saleWithHolds(t);
  engine.signal('SIGKILL');
  await engine.exited;
  await closeSale(pool, spec.eventId);
  t.match(await state(pool, spec.eventId), { live: 3, owned: 2 }, 'the dead owner still names itself');
  // Its leases run out (2 s), and the next look for sales to settle comes within 5 s.
  const next = await start();
  await waitFor(
    'the closed shards settled',
    async () => {
      const now = await state(pool, spec.eventId);
      return now.live === 0 && now.owned === 0 && (await next.metric('sentinel_engine_owned_shards')) === 0;
    },
    20_000,
  );
  t.same(await state(pool, spec.eventId), { live: 0, expired: 3, confirmed: 1, held: 0, sold: 1, pool_held: 0, owned: 0 });
  t.equal(await next.metric('sentinel_engine_owned_shards'), 0, 'and serves none of them');
  t.ok(
    next.logs.some((l) => /Handed off shard/.test(l) && /"reason":"closed"/.test(l)),
    'it claimed them and handed them off as closed',
  );
});

t.test('an owner stopped (SIGTERM) right after the close ends the holds in its hand-off', async (t) => {
  // Its rounds are a minute apart (its lease TTL two): after the first (which claims both shards)
  // only the stop can see the close.
  const { pool, spec, engine } = await saleWithHolds(t, { SENTINEL_REBALANCE_INTERVAL_MS: '60000', SENTINEL_LEASE_TTL_MS: '120000' });
  await closeSale(pool, spec.eventId);
  t.equal(await engine.stop(), 0, 'SIGTERM exits 0');
  t.same(await state(pool, spec.eventId), { live: 0, expired: 3, confirmed: 1, held: 0, sold: 1, pool_held: 0, owned: 0 });
});

t.test('a sale whose opening moved later keeps its holds: it is not over — until one is due', async (t) => {
  const { pool, spec, engine } = await saleWithHolds(t);
  await pool.query(
    `UPDATE events SET sale_opens_at = now() + interval '1 hour', sale_closes_at = now() + interval '2 hours', version = version + 1 WHERE id = $1`,
    [spec.eventId],
  );
  await waitFor('both shards handed off', async () => (await engine.metric('sentinel_engine_owned_shards')) === 0);
  await sleep(6_000); // past the engine's next look for sales to settle (every 5 s)
  t.match(await state(pool, spec.eventId), { live: 3, held: 2, sold: 1, pool_held: 3, owned: 0 }, 'handed off for when it opens');

  // One hold comes due while nobody serves the sale: an engine claims its shard to expire it,
  // keeps the others, and lets the shard go again.
  const logged = engine.logs.length;
  await pool.query(`UPDATE holds SET expires_at = now() - interval '1 second' WHERE event_id = $1 AND customer = 'cy'`, [spec.eventId]);
  await waitFor('the due hold expired', async () => (await state(pool, spec.eventId)).live === 2, 15_000);
  await waitFor('the shard let go again', async () => (await state(pool, spec.eventId)).owned === 0, 5_000);
  t.match(
    await state(pool, spec.eventId),
    { live: 2, held: 2, pool_held: 0, owned: 0 },
    "the pool's places are free, the seats still held",
  );
  const since = engine.logs.slice(logged);
  t.ok(since.some((l) => /Claimed shard/.test(l)) && since.some((l) => /Handed off shard/.test(l) && /"reason":"handoff"/.test(l)));
  t.notOk(
    since.some((l) => /"reason":"closed"/.test(l)),
    'claimed, and handed off for when it opens, not as closed',
  );
});
