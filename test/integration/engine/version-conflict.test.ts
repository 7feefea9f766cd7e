/**
 * A commit that finds a row changed underneath is told apart from a fence (migration 0015), on a
 * real engine process and Postgres: a seat whose version moved behind the engine's back, the
 * shard's epoch untouched, is logged and counted as a version conflict; an epoch that moved on
 * (another claim) still counts as fenced. Either way the shard stops and is rebuilt from Postgres,
 * and the caller's retry — the same command, told its error was retryable — sells the seat.
 */
import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { ShardDriver } from '../../support/shard-driver.js';
import { provisionTestEvent, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';

t.test('a seat changed underneath counts as a version conflict, an epoch moved on as fenced; both rebuild the shard', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'version-conflict-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 1, seats: 4 }) });
  const driver = new ShardDriver(nc, spec);
  const engine = await startEngine(spec.eventId);
  t.teardown(() => engine.stop().then(() => undefined));
  await waitFor('the engine owns the shard', async () => (await engine.metric('sentinel_engine_owned_shards')) === 1);

  const stops = async () => ({
    fenced: await engine.count('sentinel_engine_lease_events_total', { event: 'fenced' }),
    version_conflict: await engine.count('sentinel_engine_lease_events_total', { event: 'version_conflict' }),
    commit_failed: await engine.count('sentinel_engine_lease_events_total', { event: 'commit_failed' }),
  });
  const epochNow = async () =>
    Number(
      (await pool.query<{ epoch: string }>('SELECT epoch FROM shards WHERE event_id = $1 AND shard = 0', [spec.eventId])).rows[0]!.epoch,
    );
  /** The engine's log lines with `msg`, from its `from`th line on. */
  const logged = (msg: string, from: number) => engine.records(from).filter((r) => r['msg'] === msg);

  // A write from outside the engine: seat A-1-1 moves to version 1 while the shard's memory has it
  // at 0. The epoch stays the shard's own.
  const epoch = await epochNow();
  await pool.query(`UPDATE seats SET version = version + 1 WHERE event_id = $1 AND seat_id = 'A-1-1'`, [spec.eventId]);
  let from = engine.logs.length;
  t.match(
    await driver.send({ type: 'reserve', key: 'ann-1', customer: 'ann', seat: 'A-1-1' }),
    { type: 'confirmed' },
    'the sale’s commit met the changed seat; retried, the rebuilt shard sold it',
  );
  t.same(await stops(), { fenced: 0, version_conflict: 1, commit_failed: 0 }, 'counted as a version conflict, not as a fence');
  await waitFor('its log line', () => logged('Version conflict: shard stopped', from).length > 0, 5000, 20);
  const conflict = logged('Version conflict: shard stopped', from);
  t.equal(conflict.length, 1, 'logged once, with a message of its own');
  t.match(conflict[0], { epoch, err: /shard .*\/0: a seat changed underneath/ }, 'at the epoch the shard still held');
  t.same(logged('Fenced: shard stopped', from), [], 'not logged as a fence');
  t.ok((await epochNow()) > epoch, 'the shard was claimed again, to be rebuilt');

  // Another claim behind the engine's back: the epoch moves on; the seats are as the shard saw them.
  const superseded = await epochNow();
  await pool.query(`UPDATE shards SET epoch = epoch + 1, owner = 'usurper' WHERE event_id = $1 AND shard = 0`, [spec.eventId]);
  from = engine.logs.length;
  t.match(
    await driver.send({ type: 'reserve', key: 'bob-1', customer: 'bob', seat: 'A-1-2' }),
    { type: 'confirmed' },
    'the sale’s commit was fenced; retried, the rebuilt shard sold the seat',
  );
  t.same(await stops(), { fenced: 1, version_conflict: 1, commit_failed: 0 }, 'an epoch that moved on still counts as fenced');
  await waitFor('its log line', () => logged('Fenced: shard stopped', from).length > 0, 5000, 20);
  t.match(
    logged('Fenced: shard stopped', from),
    [{ epoch: superseded, err: `epoch ${superseded} is no longer current` }],
    'logged as a fence, refused by the epoch check',
  );
  t.same(logged('Version conflict: shard stopped', from), [], 'not logged as a version conflict');
});
