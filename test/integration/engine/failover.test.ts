import t, { type Test } from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardCommand } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver, runStream } from '../../support/shard-driver.js';
import {
  provisionTestEvent,
  shardOwners,
  sleep,
  startEngine,
  testDatabase,
  testLayout,
  waitFor,
  type EngineProcess,
} from '../../support/stack.js';

const LEASE_TTL_MS = 2000;
// Stated slack on top of the lease TTL for a take-over: one rebalance round (250 ms), the claim
// and the rebuild from Postgres, and scheduling noise on a loaded 2-core machine.
const TAKEOVER_SLACK_MS = 3000;

async function setup(t: Test) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'failover-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount: 2, layout: testLayout({ rows: 10, seats: 40 }) });
  const driver = new ShardDriver(nc, spec);
  const engines: EngineProcess[] = [await startEngine(spec.eventId), await startEngine(spec.eventId)];
  t.teardown(async () => {
    for (const e of engines) {
      e.signal('SIGCONT');
      await e.stop();
    }
  });
  await waitFor(
    '1 shard each',
    async () =>
      (await engines[0]!.metric('sentinel_engine_owned_shards')) === 1 && (await engines[1]!.metric('sentinel_engine_owned_shards')) === 1,
  );
  return { pool, driver, spec, engines };
}

function holds(driver: ShardDriver, shard: number, from: number, count: number, prefix: string): ShardCommand[] {
  return driver.map
    .seatsOfShard(shard)
    .slice(from, from + count)
    .map((seat, i) => ({ type: 'hold' as const, key: `${prefix}-${i}`, customer: `${prefix}-c${i}`, seats: [seat] }));
}

t.test('SIGKILL of a shard owner mid-stream: another engine takes over, nothing acknowledged is lost', async (t) => {
  const { pool, driver, spec, engines } = await setup(t);
  const owners = await shardOwners(pool, spec.eventId);
  const victim = engines.find((e) => e.id === owners.get(0))!;
  const survivor = engines.find((e) => e !== victim)!;

  const streaming = runStream(driver, holds(driver, 0, 0, 200, 'kill'), 4, 10);
  await sleep(300);
  const killedAt = Date.now();
  victim.signal('SIGKILL');
  await waitFor(
    'survivor owns both shards',
    async () => (await survivor.metric('sentinel_engine_owned_shards')) === 2,
    LEASE_TTL_MS + TAKEOVER_SLACK_MS + 2000,
    50,
  );
  const takeover = Date.now() - killedAt;
  t.ok(
    takeover <= LEASE_TTL_MS + TAKEOVER_SLACK_MS,
    `take-over in ${takeover} ms ≤ lease TTL ${LEASE_TTL_MS} + slack ${TAKEOVER_SLACK_MS}`,
  );
  const outcome = await streaming;

  const results = outcome.acknowledged.map((a) => a.result);
  t.same(await inventoryViolations(pool, spec.eventId, results), [], 'every acknowledged hold is in Postgres; no seat held twice');
  t.same(outcome.failed, [], 'retries with the same key carried every command through the take-over');
  t.equal(results.filter((r) => r.type === 'held').length, 200);
  const owner = await shardOwners(pool, spec.eventId);
  t.equal(owner.get(0), survivor.id);
});

t.test('SIGSTOP past the lease: the new owner sells; after SIGCONT the old owner is fenced', async (t) => {
  const { pool, driver, spec, engines } = await setup(t);
  const owners = await shardOwners(pool, spec.eventId);
  const paused = engines.find((e) => e.id === owners.get(0))!;
  const other = engines.find((e) => e !== paused)!;
  const epochBefore = (await pool.query<{ epoch: string }>('SELECT epoch FROM shards WHERE event_id = $1 AND shard = 0', [spec.eventId]))
    .rows[0]!.epoch;

  paused.signal('SIGSTOP');
  await waitFor(
    'the other engine owns shard 0',
    async () => (await shardOwners(pool, spec.eventId)).get(0) === other.id,
    LEASE_TTL_MS + TAKEOVER_SLACK_MS + 2000,
    50,
  );
  const sold = await runStream(driver, holds(driver, 0, 0, 50, 'after-pause'), 4);
  t.equal(sold.acknowledged.filter((a) => a.result.type === 'held').length, 50, 'the new owner sells');

  paused.signal('SIGCONT');
  await waitFor('the old owner notices it lost the shard', () => paused.logs.some((l) => /Lost shard lease|Fenced/.test(l)), 10_000);
  // Whatever the old owner still had queued is refused: its epoch is gone.
  const again = await runStream(driver, holds(driver, 0, 0, 50, 'after-pause'), 4);
  t.same(
    again.acknowledged.map((a) => a.result),
    sold.acknowledged.map((a) => a.result),
    'replays still answer with the new owner’s results',
  );
  const epochAfter = (await pool.query<{ epoch: string }>('SELECT epoch FROM shards WHERE event_id = $1 AND shard = 0', [spec.eventId]))
    .rows[0]!.epoch;
  t.ok(Number(epochAfter) > Number(epochBefore), `epoch moved on (${epochBefore} → ${epochAfter})`);
  t.same(
    await inventoryViolations(
      pool,
      spec.eventId,
      sold.acknowledged.map((a) => a.result),
    ),
    [],
    'no double sale',
  );
  await waitFor('old owner serves only its other shard', async () => (await paused.metric('sentinel_engine_owned_shards')) <= 1);
});
