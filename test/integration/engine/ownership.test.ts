import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardCommand } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver, runStream, type StreamOutcome } from '../../support/shard-driver.js';
import {
  provisionTestEvent,
  shardOwners,
  startEngine,
  testDatabase,
  testLayout,
  waitFor,
  type EngineProcess,
} from '../../support/stack.js';

/** An engine's log records with this message. */
function logged(engine: EngineProcess, msg: string): Record<string, unknown>[] {
  return engine.records().filter((record) => record['msg'] === msg);
}

/** When (epoch ms, by its log) `engine` began serving each shard of `eventId` it claimed; a shard claimed twice is `NaN`. */
function claimedAt(engine: EngineProcess, eventId: string): Map<number, number> {
  const claims = new Map<number, number>();
  for (const record of logged(engine, 'Claimed shard')) {
    if (record['event'] !== eventId) continue;
    const shard = Number(record['shard']);
    claims.set(shard, claims.has(shard) ? NaN : Date.parse(String(record['time'])));
  }
  return claims;
}

// Long enough for a third engine to start and the shards to settle 3/3/2 on a loaded 2-core
// machine, with room to spare; the stream stops well before, as soon as the hand-offs are behind it.
const STREAM_LIMIT_MS = 60_000;
// Commands each shard the third engine took must answer after it began serving it.
const AFTER_CLAIM = 3;

t.test('engines share an event: 4 + 4 shards, then a third joins and no command is lost', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'ownership-test' });
  t.teardown(() => nc.close());
  // 10,000 seats, 1,250 a shard: enough distinct seats for the stream to last its whole limit if
  // it must (at 8 workers and 40 ms pauses, about a minute of commands) — through the third
  // engine's start and the hand-offs however slow a loaded machine makes them.
  const spec = await provisionTestEvent(pool, { shardCount: 8, layout: testLayout({ sections: 8, rows: 25, seats: 50 }) });
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

  // A stream of holds on distinct seats while a third engine joins and shards move. The seats are
  // dealt round the shards (in layout order they go shard by shard), so every shard has commands
  // in flight all along — those of the shards that move among them.
  const byShard = Array.from({ length: spec.shardCount }, (_, shard) => driver.map.seatsOfShard(shard));
  const seats = Array.from({ length: Math.max(...byShard.map((s) => s.length)) }, (_, i) => byShard.flatMap((s) => s[i] ?? [])).flat();
  const commands: ShardCommand[] = seats.map((seat, i) => ({ type: 'hold', key: `k-${i}`, customer: `c-${i}`, seats: [seat] }));
  const shardOf = (command: ShardCommand) => driver.shardOf(command);

  // The stream goes on until the shards are balanced 3/3/2 and every shard the third engine took
  // has answered commands sent after it began serving them — so the hand-offs happen mid-stream —
  // or until its time or its seats run out (then the assertions below say what was missing).
  let c: EngineProcess | undefined;
  let claims: Map<number, number> | undefined;
  let gaveUp = false;
  const streamDeadline = Date.now() + STREAM_LIMIT_MS;
  const handOffsBehind = (sofar: StreamOutcome) =>
    claims !== undefined &&
    [...claims].every(
      ([shard, at]) => sofar.acknowledged.filter((a) => shardOf(a.command) === shard && a.sentAt > at).length >= AFTER_CLAIM,
    );
  const streaming = runStream(driver, commands, 8, 40, (sofar) => gaveUp || Date.now() > streamDeadline || handOffsBehind(sofar));
  try {
    c = await startEngine(spec.eventId);
    t.teardown(() => c?.stop().then(() => undefined));
    await waitFor('3/3/2 balance', async () => {
      const counts = await Promise.all([a, b, c!].map((e) => e.metric('sentinel_engine_owned_shards')));
      return counts.sort().join(',') === '2,3,3';
    });
    // Its claims as it logged them (the lines may come through its stdout after the gauge moved).
    const owning = await c.metric('sentinel_engine_owned_shards');
    claims = await waitFor('the third engine logged its claims', () => {
      const logged = claimedAt(c!, spec.eventId);
      return logged.size === owning ? logged : undefined;
    });
  } catch (error) {
    gaveUp = true;
    await streaming;
    throw error;
  }
  const outcome = await streaming;
  const sent = outcome.acknowledged.length + outcome.failed.length;

  t.same(outcome.failed, [], 'every command answered within its deadline');
  t.equal(outcome.acknowledged.filter((a) => a.result.type === 'held').length, sent, `every hold on a free seat succeeded (${sent} sent)`);
  t.same(
    await inventoryViolations(
      pool,
      spec.eventId,
      outcome.acknowledged.map((a) => a.result),
    ),
    [],
  );
  const held = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM seats WHERE event_id = $1 AND state = 'held'`, [spec.eventId]);
  t.equal(Number(held.rows[0]?.n), sent, 'exactly the acknowledged seats are held');

  // The stream overlapped the hand-offs: each shard the third engine took answered commands before
  // that engine even started (so before any shard could move: it moves only once the newcomer has
  // joined the membership, after it logged its start), and commands sent after the newcomer began
  // serving it. Its owner then is the newcomer by Postgres, and was given it by a graceful hand-off.
  // Commands in flight across a hand-off (sent before the newcomer served the shard, answered
  // after) are only counted: the gap between the old owner's last answer and the newcomer's first
  // can be shorter than the gap between two commands to a shard, so some run has none.
  const cStarted = Date.parse(String(logged(c, 'Engine started')[0]?.['time']));
  t.ok(Number.isFinite(cStarted), 'the third engine logged its start');
  const finalOwners = await shardOwners(pool, spec.eventId);
  const ownedByC = [...finalOwners].filter(([, owner]) => owner === c.id).map(([shard]) => shard);
  t.same([...claims.keys()].sort(), ownedByC.sort(), 'the third engine claimed exactly the shards Postgres says it owns');
  t.ok(ownedByC.length === 2 || ownedByC.length === 3, `the third engine owns its share (${ownedByC.length} shards)`);
  for (const [shard, at] of claims) {
    const ofShard = outcome.acknowledged.filter((a) => shardOf(a.command) === shard);
    const before = ofShard.filter((a) => a.answeredAt < cStarted).length;
    const after = ofShard.filter((a) => a.sentAt > at).length;
    const across = ofShard.filter((a) => a.sentAt < at && a.answeredAt > at).length;
    t.ok(Number.isFinite(at), `shard ${shard} was claimed once by the third engine`);
    t.ok(before > 0, `shard ${shard}: ${before} commands answered by its old owner before the third engine started`);
    t.ok(
      after >= AFTER_CLAIM,
      `shard ${shard}: ${after} commands sent after the third engine began serving it were answered (${across} were in flight across its hand-off)`,
    );
    const handedOff = [a, b].some((e) =>
      logged(e, 'Handed off shard').some((r) => r['shard'] === `${spec.eventId}/${shard}` && r['reason'] === 'handoff'),
    );
    t.ok(handedOff, `shard ${shard} was handed off gracefully by its old owner`);
  }

  // Retrying commands (same idempotency keys) returns the first results and changes nothing — on
  // the shards that moved too: their first answers came from the old owners.
  const retried = commands.slice(0, Math.min(50, sent));
  const replay = await runStream(driver, retried, 8);
  t.same(replay.failed, [], 'every replay answered');
  t.equal(replay.acknowledged.length, retried.length, 'every replay acknowledged');
  t.ok(
    retried.some((command) => claims.has(shardOf(command))),
    'some replays went to shards that moved',
  );
  for (const { command, result } of replay.acknowledged) {
    const first = outcome.acknowledged.find((a) => a.command.key === command.key);
    t.same(result, first?.result, `replay of ${command.key} returns the first result`);
  }
  const heldAfter = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM seats WHERE event_id = $1 AND state = 'held'`, [
    spec.eventId,
  ]);
  t.equal(Number(heldAfter.rows[0]?.n), sent, 'the replays held nothing more');

  // Graceful shutdown hands off: the remaining engines take everything.
  t.equal(await c.stop(), 0, 'SIGTERM exits 0');
  await waitFor(
    '4/4 after hand-off',
    async () => (await a.metric('sentinel_engine_owned_shards')) === 4 && (await b.metric('sentinel_engine_owned_shards')) === 4,
  );
});
