import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardCommand } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver, runStream } from '../../support/shard-driver.js';
import { provisionTestEvent, shardOwners, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';

t.test('engines share an event: 4 + 4 shards, then a third joins and no command is lost', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'ownership-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount: 8, layout: testLayout({ sections: 2, rows: 8, seats: 25 }) });
  const driver = new ShardDriver(nc, spec);

  const a = await startEngine(spec.eventId);
  const b = await startEngine(spec.eventId);
  t.teardown(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });
  await waitFor(
    '4 shards each',
    async () => (await a.metric('sentinel_engine_owned_shards')) === 4 && (await b.metric('sentinel_engine_owned_shards')) === 4,
  );
  const owners = await shardOwners(pool, spec.eventId);
  t.equal(new Set(owners.values()).size, 2, 'two owners recorded in Postgres');
  t.equal([...owners.values()].filter((o) => o === a.id).length, 4);

  // A stream of holds on distinct seats while a third engine joins and shards move.
  const seats = driver.seats();
  const commands: ShardCommand[] = seats
    .slice(0, 300)
    .map((seat, i) => ({ type: 'hold', key: `k-${i}`, customer: `c-${i}`, seats: [seat] }));
  const streaming = runStream(driver, commands, 8, 40);
  const c = await startEngine(spec.eventId);
  t.teardown(() => c.stop().then(() => undefined));
  const outcome = await streaming;
  await waitFor('3/3/2 balance', async () => {
    const counts = await Promise.all([a, b, c].map((e) => e.metric('sentinel_engine_owned_shards')));
    return counts.sort().join(',') === '2,3,3';
  });

  t.same(outcome.failed, [], 'every command answered within its deadline');
  t.equal(outcome.acknowledged.filter((a) => a.result.type === 'held').length, 300, 'every hold on a free seat succeeded');
  t.same(
    await inventoryViolations(
      pool,
      spec.eventId,
      outcome.acknowledged.map((a) => a.result),
    ),
    [],
  );
  const held = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM seats WHERE event_id = $1 AND state = 'held'`, [spec.eventId]);
  t.equal(Number(held.rows[0]?.n), 300, 'exactly the acknowledged seats are held');

  // Retrying every command (same idempotency keys) returns the first results, changes nothing.
  const replay = await runStream(driver, commands.slice(0, 50), 8);
  for (const { command, result } of replay.acknowledged) {
    const first = outcome.acknowledged.find((a) => a.command.key === command.key);
    t.same(result, first?.result, `replay of ${command.key} returns the first result`);
  }

  // Graceful shutdown hands off: the remaining engines take everything.
  t.equal(await c.stop(), 0, 'SIGTERM exits 0');
  await waitFor(
    '4/4 after hand-off',
    async () => (await a.metric('sentinel_engine_owned_shards')) === 4 && (await b.metric('sentinel_engine_owned_shards')) === 4,
  );
});
