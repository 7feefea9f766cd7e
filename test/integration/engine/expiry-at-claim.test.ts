/**
 * Holds that come due while nobody serves their shard are ended by the next owner when it claims
 * the shard, before it serves (`expireNow`). Until 2026-12-05 that owner committed all of them in
 * one commit: a few thousand holds made one commit that ran past the statement timeout, and the
 * shard stopped, was claimed again a second later and failed the same way, for good — its holds
 * outlived their TTL and the shard answered nobody (ADR 0006, item 4; ADR 0009, addendum of
 * 2026-12-05). Now they go in commits of at most SENTINEL_BATCH_MAX holds, which Postgres ends in
 * time proportional to their number (migration 0017).
 */
import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardCommand } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { runStream, ShardDriver } from '../../support/shard-driver.js';
import { provisionTestEvent, sleep, startEngine, testDatabase, testLayout, waitFor, type EngineProcess } from '../../support/stack.js';

const HOLDS = 3000;
const BATCH_MAX = 64;
/** Long enough for the holds to be made and the engine stopped before the first comes due. */
const TTL_MS = 12_000;

t.test('thousands of holds due at a claim: the next owner ends them in commits of at most batchMax holds, and serves', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'expiry-at-claim-test' });
  t.teardown(() => nc.close());
  // 6,000 seats in rows of 100, on two shards: each hold takes two adjacent seats of a row.
  const spec = await provisionTestEvent(pool, { shardCount: 2, layout: testLayout({ rows: 60, seats: 100 }), holdTtlMs: TTL_MS });
  const driver = new ShardDriver(nc, spec, 30_000);
  const env = { SENTINEL_BATCH_MAX: String(BATCH_MAX) };
  const engines: EngineProcess[] = [];
  t.teardown(async () => {
    for (const engine of engines) await engine.stop();
  });
  const start = async () => {
    const engine = await startEngine(spec.eventId, env);
    engines.push(engine);
    await waitFor('both shards served', async () => (await engine.metric('sentinel_engine_owned_shards')) === 2);
    return engine;
  };

  const first = await start();
  const seats = driver.seats();
  const commands: ShardCommand[] = Array.from({ length: HOLDS }, (_, i) => ({
    type: 'hold',
    key: `k${i}`,
    customer: `c${i}`,
    seats: [seats[2 * i]!, seats[2 * i + 1]!],
  }));
  const made = await runStream(driver, commands, 32);
  t.same(made.failed, [], 'every hold was answered');
  t.equal(made.acknowledged.filter((a) => a.result.type === 'held').length, HOLDS, 'and made');
  t.equal(await first.stop(), 0, 'the owner stops (SIGTERM): it hands the shards off, their holds live');

  const live = async () =>
    (
      await pool.query<{ live: number; due: number; last: Date | null }>(
        `SELECT count(*)::int AS live, (count(*) FILTER (WHERE expires_at < now()))::int AS due, max(expires_at) AS last
           FROM holds WHERE event_id = $1 AND state = 'live'`,
        [spec.eventId],
      )
    ).rows[0]!;
  const before = await live();
  t.equal(before.live, HOLDS, 'none had come due while it served');
  // Nobody serves the sale while they all come due.
  await sleep(Math.max(0, before.last!.getTime() - Date.now()) + 500);
  t.equal((await live()).due, HOLDS, 'every hold is past its TTL');

  const started = Date.now();
  const next = await start();
  await waitFor('no live hold past its TTL', async () => (await live()).live === 0, 20_000);
  t.pass(`the next owner ended ${HOLDS} holds due within ${Date.now() - started} ms of its start`);
  const claimed = next.records().filter((r) => r['msg'] === 'Claimed shard');
  t.equal(
    claimed.reduce((n, r) => n + Number(r['liveHolds']), 0),
    HOLDS,
    'its claims loaded every hold still live: all of them came due while nobody served the shards',
  );
  t.equal(await next.count('sentinel_engine_lease_events_total', { event: 'commit_failed' }), 0, 'no commit failed');
  t.equal(await next.metric('sentinel_engine_owned_shards'), 2, 'it still serves both shards');

  // Each commit ended at most batchMax holds: those of one commit share its time (one commit of a
  // shard at a time, each of them milliseconds long; twice batchMax leaves room for two in one ms).
  const { rows: largest } = await pool.query<{ shard: number; n: number }>(
    `SELECT shard, count(*)::int AS n FROM holds WHERE event_id = $1 AND state = 'expired'
      GROUP BY shard, ended_at ORDER BY n DESC LIMIT 1`,
    [spec.eventId],
  );
  t.ok(largest[0]!.n <= 2 * BATCH_MAX, `at most ${BATCH_MAX} holds ended per commit (the largest ended ${largest[0]!.n})`);
  const { rows: after } = await pool.query<{ held: number; used: number }>(
    `SELECT (SELECT count(*) FROM seats WHERE event_id = $1 AND state <> 'available')::int AS held,
            (SELECT coalesce(sum(used), 0) FROM customer_usage WHERE event_id = $1)::int AS used`,
    [spec.eventId],
  );
  t.same(after[0], { held: 0, used: 0 }, "every seat is free again and no customer's usage counts an expired hold");

  // Both shards answer: a seat of each, freed by the expiry, is held again.
  for (const shard of [0, 1]) {
    const seat = driver.map.seatsOfShard(shard)[0]!;
    const result = await driver.send({ type: 'hold', key: `again-${shard}`, customer: `again-${shard}`, seats: [seat] });
    t.equal(result.type, 'held', `shard ${shard} answers, and holds ${seat} again`);
  }
});
