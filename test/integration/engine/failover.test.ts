/**
 * A shard's fail-over between two engine processes, on the real stack. Every stream sends two
 * rivals per seat, so that a seat held twice would show.
 * - SIGKILL of an owner mid-stream: another engine takes over in time, and nothing acknowledged is lost.
 * - SIGSTOP past the lease with nothing in flight: the new owner sells; the paused one, woken, gives
 *   the shard up by its lease.
 * - SIGSTOP with a commit of the shard under way: the new owner sells the same seats to others; the
 *   paused one, woken, sends its commit, and the epoch check refuses it.
 */
import { readFileSync } from 'node:fs';
import { createInbox, type NatsConnection } from 'nats';
import type pg from 'pg';
import t, { type Test } from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { decodeReplies, encode, shardSubject, type ShardReply, type ShardRequest } from '../../../src/engine/protocol.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { inventoryViolations } from '../../support/invariants.js';
import { ShardDriver, runStream, type StreamOutcome } from '../../support/shard-driver.js';
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
// Seats of shard 0 the paused owner and the new owner both sell, in the fencing test.
const CONTESTED_SEATS = 8;

/** Two engines sharing an event of `shardCount` shards (even), once each serves half of them. */
async function setup(t: Test, shardCount = 2) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'failover-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount, layout: testLayout({ rows: 10, seats: 40 }) });
  const driver = new ShardDriver(nc, spec);
  const engines: EngineProcess[] = [await startEngine(spec.eventId), await startEngine(spec.eventId)];
  t.teardown(async () => {
    for (const e of engines) {
      e.signal('SIGCONT');
      await e.stop();
    }
  });
  const each = shardCount / 2;
  await waitFor(
    `${each} shard(s) each`,
    async () =>
      (await engines[0]!.metric('sentinel_engine_owned_shards')) === each &&
      (await engines[1]!.metric('sentinel_engine_owned_shards')) === each,
  );
  return { pool, nc, driver, spec, engines };
}

function holds(driver: ShardDriver, shard: number, from: number, count: number, prefix: string): ShardCommand[] {
  return driver.map
    .seatsOfShard(shard)
    .slice(from, from + count)
    .map((seat, i) => ({ type: 'hold' as const, key: `${prefix}-${i}`, customer: `${prefix}-c${i}`, seats: [seat] }));
}

/**
 * Two rivals (`<prefix>-a-<i>`, `<prefix>-b-<i>`) for each of the first `count` seats of a shard,
 * side by side in the stream: exactly one of each pair may win, so a seat held twice — the very
 * thing a split brain would cause — is something the invariants can see.
 */
function rivalHolds(driver: ShardDriver, shard: number, count: number, prefix: string): ShardCommand[] {
  const [a, b] = [holds(driver, shard, 0, count, `${prefix}-a`), holds(driver, shard, 0, count, `${prefix}-b`)];
  return a.flatMap((command, i) => [command, b[i]!]);
}

/**
 * A stream's results by command key, sorted by key: two runs of the same commands finish in
 * orders of their own, so they are compared command by command, not in completion order.
 */
function resultsByKey(outcome: StreamOutcome): [string, ShardResult][] {
  return outcome.acknowledged.map((a): [string, ShardResult] => [a.command.key, a.result]).sort(([a], [b]) => a.localeCompare(b));
}

async function epochOf(pool: pg.Pool, eventId: string, shard: number): Promise<number> {
  const { rows } = await pool.query<{ epoch: string }>('SELECT epoch FROM shards WHERE event_id = $1 AND shard = $2', [eventId, shard]);
  return Number(rows[0]!.epoch);
}

/** Rows of an event's customers matching `customer` (a LIKE pattern) in a table keyed by customer. */
async function countRows(
  pool: pg.Pool,
  table: 'holds' | 'idempotency_keys' | 'customer_usage',
  eventId: string,
  customer: string,
  where = 'true',
): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE event_id = $1 AND customer LIKE $2 AND ${where}`,
    [eventId, customer],
  );
  return rows[0]!.n;
}

/** The process state letter of an engine (`T`: stopped by a signal), from /proc. */
function processState(engine: EngineProcess): string | undefined {
  const stat = readFileSync(`/proc/${engine.child.pid}/stat`, 'utf8');
  // The command name, in parentheses, may contain spaces: the state follows the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}

/**
 * Publishes `requests` to a shard's subject as one request message, the way the shard client does
 * but without its retries, and collects the answers to it by command index (the first for each,
 * as the client takes them). So every answer is the one given by the process that received this
 * very message, even after a take-over.
 */
function sendOnce(t: Test, nc: NatsConnection, eventId: string, shard: number, requests: ShardRequest[]) {
  const inbox = createInbox();
  const received = new Map<number, ShardReply>();
  const subscription = nc.subscribe(inbox, {
    callback: (error, msg) => {
      if (error) return;
      for (const [index, reply] of decodeReplies(msg.data).replies) if (!received.has(index)) received.set(index, reply);
    },
  });
  t.teardown(() => {
    if (!nc.isClosed()) subscription.unsubscribe();
  });
  nc.publish(shardSubject(eventId, shard), encode({ requests }), { reply: inbox });
  return {
    /** Waits (bounded) until every command is answered; the answers in the order of the commands. */
    async answers(what: string, timeoutMs: number): Promise<ShardReply[]> {
      await waitFor(what, () => received.size === requests.length, timeoutMs, 20);
      return requests.map((_, index) => received.get(index)!);
    },
  };
}

t.test('SIGKILL of a shard owner mid-stream: another engine takes over, nothing acknowledged is lost', async (t) => {
  const { pool, driver, spec, engines } = await setup(t);
  const owners = await shardOwners(pool, spec.eventId);
  const victim = engines.find((e) => e.id === owners.get(0))!;
  const survivor = engines.find((e) => e !== victim)!;

  // Two rivals per seat: the take-over must not let both of a pair win.
  const streaming = runStream(driver, rivalHolds(driver, 0, 200, 'kill'), 4, 10);
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
  t.equal(results.filter((r) => r.type === 'held').length, 200, 'one rival of each pair holds its seat');
  t.equal(results.filter((r) => r.type === 'unavailable').length, 200, 'the other is refused');
  const owner = await shardOwners(pool, spec.eventId);
  t.equal(owner.get(0), survivor.id);
});

t.test('SIGSTOP past the lease with nothing in flight: the new owner sells; after SIGCONT the old owner gives the shard up', async (t) => {
  // The paused owner has no work of shard 0 when it is stopped (the stream starts after the
  // take-over), so after SIGCONT it has nothing for the fence to refuse: it stops serving by its
  // own clock — its lease ran out (ShardLease's timers, or the check in ShardHost.handle). The
  // next test pauses an owner with a commit in flight, which only the epoch can refuse.
  const { pool, driver, spec, engines } = await setup(t);
  const owners = await shardOwners(pool, spec.eventId);
  const paused = engines.find((e) => e.id === owners.get(0))!;
  const other = engines.find((e) => e !== paused)!;
  const epochBefore = await epochOf(pool, spec.eventId, 0);

  paused.signal('SIGSTOP');
  await waitFor(
    'the other engine owns shard 0',
    async () => (await shardOwners(pool, spec.eventId)).get(0) === other.id,
    LEASE_TTL_MS + TAKEOVER_SLACK_MS + 2000,
    50,
  );
  // Two rivals per seat, so that a seat held twice is something this test could see.
  const commands = rivalHolds(driver, 0, 50, 'after-pause');
  const sold = await runStream(driver, commands, 4);
  t.same(sold.failed, [], 'every command is answered');
  t.equal(sold.acknowledged.filter((a) => a.result.type === 'held').length, 50, 'the new owner sells each seat once');
  t.equal(sold.acknowledged.filter((a) => a.result.type === 'unavailable').length, 50, 'and refuses its rival');

  paused.signal('SIGCONT');
  await waitFor('the old owner notices it lost the shard', () => paused.logs.some((l) => /Lost shard lease/.test(l)), 10_000);
  // The same keys again: the winners' successes are replayed, the rivals refused again.
  const again = await runStream(driver, commands, 4);
  t.same(resultsByKey(again), resultsByKey(sold), 'replays answer, command by command, with the new owner’s results');
  t.ok((await epochOf(pool, spec.eventId, 0)) > epochBefore, 'the take-over bumped the epoch');
  t.same(
    await inventoryViolations(
      pool,
      spec.eventId,
      sold.acknowledged.map((a) => a.result),
    ),
    [],
    'no seat held twice; every acknowledged hold is in Postgres',
  );
  await waitFor('old owner serves only its other shard', async () => (await paused.metric('sentinel_engine_owned_shards')) <= 1);
});

t.test('SIGSTOP mid-commit: the new owner sells the same seats to others; after SIGCONT the epoch fences the old commit', async (t) => {
  // The fence end to end: an owner paused with a commit of shard 0 under way, the take-over, the
  // new owner selling those seats to others, and the old commit refused by the epoch check when
  // the old owner wakes. Not covered here: a stale commit that the seat versions alone refuse
  // (the epoch check comes first; store.test.ts covers both checks on the store directly), and
  // the host's own handling of a fenced commit with a decider and NATS (shard-host.test.ts: "a
  // fenced sale is not named and never happened"; shard-commits.test.ts: a fenced shard among
  // the shards of one commit).
  // Four shards, so each engine owns two: the paused engine needs a second shard of the event to
  // hold its commit of shard 0 back (below). The lease TTL is 2 s (startEngine).
  const { pool, nc, driver, spec, engines } = await setup(t, 4);
  const owners = await shardOwners(pool, spec.eventId);
  const paused = engines.find((e) => e.id === owners.get(0))!;
  const other = engines.find((e) => e !== paused)!;
  const blockerShard = [...owners].find(([shard, owner]) => shard !== 0 && owner === paused.id)![0];
  const epochBefore = await epochOf(pool, spec.eventId, 0);

  // How the old owner's work of shard 0 comes to be in flight at the moment of SIGSTOP. A commit
  // statement that reached Postgres before the pause is ordered before any claim (its first
  // statement locks the shard row that a claim must update), so it lands under the old epoch,
  // rightly: the blocked commit of the other shard below shows that too. A command still waiting
  // in NATS is refused on waking by the lease check in ShardHost.handle, or dropped with the
  // subscription once the lease timer has fired; a batch still in the group committer is answered
  // `lease_lost` when the lease is found lost. What only the epoch can refuse is a commit the
  // engine handed to its store before the pause and sends after it: the engine writes the commits of an event's shards one transaction at a time
  // (ShardCommits), and a shard's part handed in while another shard's commit is under way waits
  // for it — and ShardCommits never asks whether the lease is still held. So the test holds a
  // seat row of the paused engine's other shard; that shard's commit waits on it in Postgres, and
  // the holds of shard 0 decided meanwhile wait behind it, inside the engine, when it is stopped.
  const locker = await pool.connect();
  let lockHeld = false;
  t.teardown(async () => {
    if (lockHeld) await locker.query('ROLLBACK').catch(() => undefined);
    locker.release();
  });
  const lockerPid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const blockerSeat = driver.map.seatsOfShard(blockerShard)[0]!;
  await locker.query('BEGIN');
  lockHeld = true;
  await locker.query('SELECT 1 FROM seats WHERE event_id = $1 AND seat_id = $2 FOR UPDATE', [spec.eventId, blockerSeat]);
  // Sent once, without the shard client's retries, so that every answer collected is the one the
  // process that received this very message gave (here and for the holds below).
  const blocker = sendOnce(t, nc, spec.eventId, blockerShard, [
    { requestId: 'blocker', command: { type: 'hold', key: 'blocker', customer: 'blocker', seats: [blockerSeat] } },
  ]);
  await waitFor(
    `the old owner's commit of shard ${blockerShard} to wait for the seat row the test holds`,
    async () => {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid)) AND query LIKE '%sentinel_commit_batch%'`,
        [lockerPid],
      );
      return rows[0]!.n === 1;
    },
    10_000,
    20,
  );

  // The old owner's customers: one hold per seat of shard 0, in one request message, so all are
  // decided in one go and go into one group commit (far below SENTINEL_BATCH_MAX).
  const seats = driver.map.seatsOfShard(0).slice(0, CONTESTED_SEATS);
  const oldCommands = seats.map((seat, i): ShardCommand => ({ type: 'hold', key: `old-${i}`, customer: `old-c${i}`, seats: [seat] }));
  const heldDecisions = async () => (await paused.metric('sentinel_engine_decisions_total', { result: 'held' })) || 0;
  const decidedBefore = await heldDecisions();
  const old = sendOnce(
    t,
    nc,
    spec.eventId,
    0,
    oldCommands.map((command) => ({ command, requestId: command.key })),
  );
  await waitFor('the old owner to decide every hold of shard 0', async () => (await heldDecisions()) === decidedBefore + seats.length);
  // The group-commit window is 2 ms: well past it — a second, so that even an engine starved of
  // CPU for a while has run its timer — the batch has been handed to the engine's ShardCommits,
  // where it waits for the blocked commit of the other shard. (Nothing the engine exposes says so.)
  await sleep(1000);
  t.equal(await countRows(pool, 'holds', spec.eventId, 'old-%'), 0, 'decided by the old owner, not yet in Postgres');

  paused.signal('SIGSTOP');
  await waitFor('the old owner to be stopped', () => processState(paused) === 'T', 5000, 10);
  // Let the blocked commit go: it was sent before the pause, so it lands now, in Postgres alone,
  // while the engine that sent it is stopped — under the epoch it still holds, before any claim
  // of that shard. The holds of shard 0 behind it stay in the stopped process.
  await locker.query('ROLLBACK');
  lockHeld = false;
  await waitFor('the blocked commit to land', async () => (await countRows(pool, 'holds', spec.eventId, 'blocker')) === 1, 5000, 20);

  // The other engine takes shard 0 over once the paused one's lease and membership have run out:
  // its claim bumps the epoch, and it rebuilds the shard from Postgres, where those seats are free.
  await waitFor(
    'the other engine to own shard 0',
    async () => (await shardOwners(pool, spec.eventId)).get(0) === other.id,
    LEASE_TTL_MS + TAKEOVER_SLACK_MS + 2000,
    50,
  );
  const epochTaken = await epochOf(pool, spec.eventId, 0);
  t.ok(epochTaken > epochBefore, `the take-over bumped the epoch (${epochBefore} → ${epochTaken})`);
  await waitFor('the new owner to serve shard 0', () => other.records().some((l) => l['msg'] === 'Claimed shard' && l['shard'] === 0));

  // It sells the very same seats to other customers: two rivals per seat, so that a seat held
  // twice — by the rivals, or by a rival and an old customer — is something this test can see.
  // They go in one request message, so that each pair is decided side by side.
  const rivals = rivalHolds(driver, 0, CONTESTED_SEATS, 'new');
  const sold = await runStream(driver, rivals, rivals.length);
  t.same(sold.failed, [], 'the new owner answers every rival');
  const winners = new Map<string, Extract<ShardResult, { type: 'held' }>>();
  for (const { command, result } of sold.acknowledged) {
    if (result.type !== 'held') continue;
    const seat = (command as Extract<ShardCommand, { type: 'hold' }>).seats[0]!;
    t.notOk(winners.has(seat), `${seat} is held once`);
    winners.set(seat, result);
  }
  t.same([...winners.keys()].sort(), [...seats].sort(), 'the new owner sells each seat to one rival');
  t.equal(
    sold.acknowledged.filter((a) => a.result.type === 'unavailable').length,
    seats.length,
    'and refuses the other rival of each seat',
  );

  paused.signal('SIGCONT');
  // Waking, it finds its leases run out and stops deciding; but the holds of shard 0 waiting in
  // its ShardCommits go to Postgres all the same, with the epoch it claimed the shard under: the
  // commit matches no shard row, writes nothing, and every old customer is told so, retryably.
  const oldAnswers = await old.answers('the old owner to answer its customers', 20_000);
  t.same(
    oldAnswers.map((reply) => ('error' in reply ? { code: reply.error.code, retryable: reply.error.retryable } : reply)),
    oldCommands.map(() => ({ code: 'fenced', retryable: true })),
    'every hold the old owner decided before the pause is refused by the fence, none answered held',
  );
  // Its log line may come a little after the answers (stdout is read separately); bounded, and
  // not thrown on, so that a run without it goes on to show what reached Postgres instead.
  const fenceLines = () => paused.records().filter((l) => l['msg'] === 'Fenced: shard stopped');
  await waitFor('the fenced commit in the old owner’s logs', () => fenceLines().length > 0, 5000, 20).catch(() => undefined);
  const fences = fenceLines();
  t.equal(fences.length, 1, 'one commit was fenced');
  const fence = fences[0] ?? {};
  t.equal(fence['shard'], 0, 'of shard 0');
  // The epoch check itself refused it — not the seat versions (a last fail-safe, "changed
  // underneath": a version conflict, logged and counted apart): the commit's first statement
  // matched no shard row.
  t.match(fence['err'], `epoch ${epochBefore} is no longer current`, 'refused by the epoch check: its epoch was superseded');
  t.same(
    [...((fence['requestIds'] as string[] | undefined) ?? [])].sort(),
    oldCommands.map((c) => c.key).sort(),
    'the fenced commit carried exactly the holds decided before the pause',
  );
  t.equal(await paused.metric('sentinel_engine_lease_events_total', { event: 'fenced' }), 1, 'the engine counts the fenced commit');
  t.ok(
    paused.records().some((l) => l['msg'] === 'Lost shard lease'),
    'it also found its leases run out: that stopped it deciding, not the commit already handed in',
  );

  // The commit that was blocked had landed before any claim of its shard: its 201 is true.
  const blockerAnswer = (await blocker.answers('the old owner to answer the blocked hold', 20_000))[0]!;
  t.match(blockerAnswer, { result: { type: 'held' } }, 'the commit that landed during the pause is answered held after it');

  // Postgres: each contested seat is held once, by the rival the new owner told 201.
  const { rows: seatRows } = await pool.query<{ seat_id: string; state: string; hold_id: string | null; live: number }>(
    `SELECT s.seat_id, s.state, s.hold_id,
            (SELECT count(*)::int FROM holds h WHERE h.event_id = s.event_id AND h.state = 'live' AND s.seat_id = ANY (h.seats)) AS live
       FROM seats s WHERE s.event_id = $1 AND s.seat_id = ANY ($2) ORDER BY s.seat_id`,
    [spec.eventId, seats],
  );
  t.same(
    seatRows,
    [...seats].sort().map((seat) => ({ seat_id: seat, state: 'held', hold_id: winners.get(seat)?.hold.holdId, live: 1 })),
    'every contested seat has exactly one live hold: the one the new owner sold',
  );
  // Nothing the old owner decided for shard 0 reached Postgres: no hold, no idempotency record, no usage.
  t.equal(await countRows(pool, 'holds', spec.eventId, 'old-%'), 0, 'no hold of an old customer');
  t.equal(await countRows(pool, 'idempotency_keys', spec.eventId, 'old-%'), 0, 'no idempotency record of an old customer');
  t.equal(await countRows(pool, 'customer_usage', spec.eventId, 'old-%', 'used > 0'), 0, 'no usage counted for an old customer');

  // The old customers retry, as a client told "fenced, retryable" does: the shard's owner refuses
  // them now (the seats are held by the rivals); nothing of the old decisions comes back.
  const retried = await runStream(driver, oldCommands, oldCommands.length);
  t.same(retried.failed, [], 'every retry is answered');
  t.same(
    retried.acknowledged.map((a) => a.result.type),
    oldCommands.map(() => 'unavailable'),
    'every old customer is refused on retry',
  );

  // Every 201 either owner gave — the rivals', and the old owner's for the commit that landed — is
  // in Postgres, and the invariants `sentinel verify` checks hold.
  const told201 = [
    ...sold.acknowledged.map((a) => a.result),
    ...[blockerAnswer, ...oldAnswers].flatMap((r) => ('result' in r ? [r.result] : [])),
  ];
  t.same(await inventoryViolations(pool, spec.eventId, told201), [], 'no seat held twice; every acknowledged hold in Postgres');
});
