/**
 * A general-admission pool driven to sold-out against a real engine process, over NATS, with
 * Postgres watched throughout. Pool capacity was only property-tested in memory (the shard's
 * counters); here the counters are the committed `pools` row, compared with the holds and
 * reservations that should add up to it, while many customers' holds of various sizes — more
 * places than the pool has — race each other, and confirms and releases race new holds. Last,
 * Postgres's own guard: a write past the capacity is refused by the table's CHECK constraint.
 */
import t, { type Test } from 'tap';
import type { HoldView, ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { inventoryViolations } from '../../support/invariants.js';
import { engineWithDrivers } from '../../support/shard-driver.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

const CAPACITY = 60;
/** Sizes of the racing holds, in the order they are sent (cycled): every size up to 6, mixed. */
const SIZES = [3, 1, 6, 2, 5, 4];
/**
 * Connections the commands are spread over: one client sends a turn's commands as one message,
 * so several make the shard decide several messages, some while a commit of earlier ones is under way.
 */
const CONNECTIONS = 8;

const pool = await testDatabase();
t.teardown(() => pool.end());
// Holds outlive the test (10 minutes): none expires and frees places behind the test's counts.
const spec = await provisionTestEvent(pool, {
  layout: testLayout({ rows: 2, seats: 10, pool: CAPACITY }),
  shardCount: 2,
  customerLimit: 8,
  holdTtlMs: 600_000,
});
const { engine, drivers } = await engineWithDrivers(t, spec, { connections: CONNECTIONS, name: 'pool-capacity-test', deadlineMs: 30_000 });

/** The pool's committed row. */
async function poolRow(): Promise<{ capacity: number; held: number; sold: number; version: number }> {
  const { rows } = await pool.query<{ capacity: number; held: number; sold: number; version: number }>(
    `SELECT capacity, held, sold, version FROM pools WHERE event_id = $1 AND pool_id = 'GA'`,
    [spec.eventId],
  );
  return rows[0]!;
}

/** What the holds and reservations tables say the pool's counters should be. */
async function fromHoldsTable(): Promise<{ held: number; sold: number; liveHolds: number; reservations: number }> {
  const { rows } = await pool.query<{ held: number; sold: number; live_holds: number; reservations: number }>(
    `SELECT (SELECT coalesce(sum(quantity), 0)::int FROM holds WHERE event_id = $1 AND pool_id = 'GA' AND state = 'live') AS held,
            (SELECT count(*)::int FROM holds WHERE event_id = $1 AND pool_id = 'GA' AND state = 'live') AS live_holds,
            (SELECT coalesce(sum(quantity), 0)::int FROM reservations WHERE event_id = $1 AND pool_id = 'GA') AS sold,
            (SELECT count(*)::int FROM reservations WHERE event_id = $1 AND pool_id = 'GA') AS reservations`,
    [spec.eventId],
  );
  const r = rows[0]!;
  return { held: r.held, sold: r.sold, liveHolds: r.live_holds, reservations: r.reservations };
}

/** The engine's decisions so far by result type (0 for a type it never answered). */
const decisions = (result: string) => engine.count('sentinel_engine_decisions_total', { result });

/**
 * Sends every command before awaiting any answer, spread over the connections, while reading the
 * pool's row from Postgres as often as it can. Returns each command's answer (a failure fails the
 * test) and the highest held + sold of any row read — the CHECK constraint should make more
 * impossible, and the readings show it never happened.
 */
async function rush(t: Test, commands: readonly ShardCommand[], shard?: number) {
  let running = true;
  let readings = 0;
  let peak = 0;
  const watching = (async () => {
    while (running) {
      const row = await poolRow();
      readings++;
      peak = Math.max(peak, row.held + row.sold);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  const before = { held: await decisions('held'), unavailable: await decisions('unavailable') };
  const outcomes = await Promise.allSettled(
    // A confirm or release names no pool the driver could route by: it goes to `shard`.
    commands.map((command, i) => drivers[i % CONNECTIONS]!.send(command, command.type === 'hold-pool' ? undefined : shard)),
  ).finally(() => {
    running = false;
  });
  await watching;
  const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
  t.same(failures.slice(0, 5), [], `every command was answered (${failures.length} failed)`);
  t.ok(readings > 0, `the pool row was read ${readings} times during the rush`);
  t.ok(peak <= CAPACITY, `held + sold never exceeded the capacity in Postgres (at most ${peak} of ${CAPACITY} in ${readings} readings)`);
  const results = outcomes.map((o) => (o.status === 'fulfilled' ? o.value : undefined));
  return { results, before };
}

/** Pool holds of `count` customers named `prefix-<i>`, sizes cycling through SIZES. */
function poolHolds(prefix: string, count: number): ShardCommand[] {
  return Array.from({ length: count }, (_, i) => ({
    type: 'hold-pool',
    key: `${prefix}-${i}`,
    customer: `${prefix}-${i}`,
    pool: 'GA',
    quantity: SIZES[i % SIZES.length]!,
  }));
}

/** `pool GA has <left> places left; <q> requested`: the places left when the refusal was decided. */
function placesLeftWhenRefused(result: Extract<ShardResult, { type: 'unavailable' }>): number {
  const match = /^pool GA has (\d+) places left; (\d+) requested$/.exec(result.message);
  return match === null ? NaN : Number(match[1]);
}

/** Checks the pool's row against the holds table, the engine's logs and the invariants. */
async function consistent(t: Test, acknowledged: readonly ShardResult[]) {
  const row = await poolRow();
  const table = await fromHoldsTable();
  t.same(
    { held: row.held, sold: row.sold },
    { held: table.held, sold: table.sold },
    'the pool row counts exactly the live holds and reservations',
  );
  t.ok(row.held + row.sold <= row.capacity, `held ${row.held} + sold ${row.sold} ≤ capacity ${row.capacity}`);
  t.notOk(
    engine.logs.some((line) => line.includes('Commit failed') || line.includes('Fenced')),
    'no commit failed (the constraint never had to refuse one) and the shard was never rebuilt',
  );
  t.same(await inventoryViolations(pool, spec.eventId, acknowledged), [], 'the invariants hold');
  return { row, table };
}

/** Every hold acknowledged so far that is still live, by id. */
const live = new Map<string, HoldView>();
/** Every success acknowledged (for the invariants' ack-missing check). */
const acknowledged: ShardResult[] = [];

t.test(`100 holds of 1–6 places race for a pool of ${CAPACITY}: no more is held than it has`, async (t) => {
  t.same(await poolRow(), { capacity: CAPACITY, held: 0, sold: 0, version: 0 }, 'the pool is empty');
  const commands = poolHolds('rush', 100);
  const demand = commands.reduce((n, c) => n + (c.type === 'hold-pool' ? c.quantity : 0), 0);
  t.ok(demand > 5 * CAPACITY, `${demand} places asked for ${CAPACITY}`);
  const { results, before } = await rush(t, commands);

  const held = results.filter((r): r is Extract<ShardResult, { type: 'held' }> => r?.type === 'held');
  const refused = results.filter((r): r is Extract<ShardResult, { type: 'unavailable' }> => r?.type === 'unavailable');
  t.equal(held.length + refused.length, commands.length, 'every answer is a hold or an unavailable refusal');
  const heldPlaces = held.reduce((n, r) => n + r.hold.quantity, 0);
  t.ok(heldPlaces <= CAPACITY, `${heldPlaces} places held`);
  // Places only go during the rush, so each refusal saw at least the places left at its end, and
  // asked for more than it saw: a refusal that could have been held would break this.
  const leftAtEnd = CAPACITY - heldPlaces;
  const unjustified = results.filter((r, i) => {
    if (r?.type !== 'unavailable') return false;
    const left = placesLeftWhenRefused(r);
    const asked = (commands[i] as { quantity: number }).quantity;
    return !(r.seats.length === 0 && left >= leftAtEnd && left < asked);
  });
  t.same(unjustified.slice(0, 3), [], `each refusal asked for more places than were left (${leftAtEnd} at the end)`);
  t.ok(refused.length > 0, `${refused.length} refused`);
  t.equal((await decisions('held')) - before.held, held.length, 'the engine counts the holds it decided');
  t.equal((await decisions('unavailable')) - before.unavailable, refused.length, 'and the refusals');

  for (const r of held) live.set(r.hold.holdId, r.hold);
  acknowledged.push(...held);
  const { row, table } = await consistent(t, acknowledged);
  t.same({ held: row.held, sold: row.sold }, { held: heldPlaces, sold: 0 }, 'the pool row counts the acknowledged holds');
  t.equal(table.liveHolds, held.length, 'one live hold row each');
});

t.test('confirms and releases race new holds: the counters follow the holds table', async (t) => {
  const holds = [...live.values()];
  const toConfirm = holds.filter((_, i) => i % 3 === 0);
  const toRelease = holds.filter((_, i) => i % 3 === 1);
  t.ok(toConfirm.length > 0 && toRelease.length > 0, `${toConfirm.length} to confirm, ${toRelease.length} to release`);
  const fresh = poolHolds('second', 40);
  const commands: ShardCommand[] = [];
  // Interleaved, so that released places are taken by new holds decided in the same stretch.
  for (let i = 0; i < Math.max(toConfirm.length, toRelease.length, fresh.length); i++) {
    const c = toConfirm[i];
    const r = toRelease[i];
    if (c) commands.push({ type: 'confirm', key: `confirm-${c.holdId}`, customer: c.customer, holdId: c.holdId });
    if (r) commands.push({ type: 'release', key: `release-${r.holdId}`, customer: r.customer, holdId: r.holdId });
    if (fresh[i]) commands.push(fresh[i]!);
  }
  // Confirms and releases go to the pool's shard: the driver routes by the pool of hold-pool only.
  const { results } = await rush(t, commands, drivers[0]!.shardOf(fresh[0]!));

  const types = (type: ShardCommand['type']) => results.filter((_, i) => commands[i]!.type === type).map((r) => r?.type);
  t.same([...new Set(types('confirm'))], ['confirmed'], 'every confirm confirmed');
  t.same([...new Set(types('release'))], ['released'], 'every release released');
  t.ok(
    types('hold-pool').every((type) => type === 'held' || type === 'unavailable'),
    'every new hold was held or refused as unavailable',
  );
  for (const hold of [...toConfirm, ...toRelease]) live.delete(hold.holdId);
  results.forEach((r, i) => {
    if (r?.type === 'held' && commands[i]!.type === 'hold-pool') live.set(r.hold.holdId, r.hold);
  });
  acknowledged.push(...results.filter((r): r is ShardResult => r?.ok === true));

  const sold = toConfirm.reduce((n, h) => n + h.quantity, 0);
  const held = [...live.values()].reduce((n, h) => n + h.quantity, 0);
  const { row, table } = await consistent(t, acknowledged);
  t.same({ held: row.held, sold: row.sold }, { held, sold }, 'the pool row counts the live holds and the confirmed ones as acknowledged');
  t.equal(table.reservations, toConfirm.length, 'one reservation per confirmed hold');
  const { rows } = await pool.query<{ state: string; n: number }>(
    `SELECT state, count(*)::int AS n FROM holds WHERE event_id = $1 AND hold_id = ANY($2) GROUP BY state ORDER BY state`,
    [spec.eventId, [...toConfirm, ...toRelease].map((h) => h.holdId)],
  );
  t.same(
    rows,
    [
      { state: 'confirmed', n: toConfirm.length },
      { state: 'released', n: toRelease.length },
    ],
    'the confirmed and released holds are so in the holds table',
  );
});

t.test('the rest of the pool is held and every hold confirmed: sold out, and the next place is refused', async (t) => {
  // One place at a time until the shard says there is none: exactly what is left is held.
  const before = await poolRow();
  let filled = 0;
  for (;;) {
    const r = await drivers[0]!.send({ type: 'hold-pool', key: `fill-${filled}`, customer: `fill-${filled}`, pool: 'GA', quantity: 1 });
    if (r.type !== 'held') {
      t.match(
        r,
        { type: 'unavailable', seats: [], message: 'pool GA has 0 places left; 1 requested' },
        'the place after the last is refused',
      );
      break;
    }
    live.set(r.hold.holdId, r.hold);
    acknowledged.push(r);
    filled++;
    if (filled > CAPACITY) break;
  }
  t.equal(filled, CAPACITY - before.held - before.sold, `${filled} more places were left, and held`);
  const shard = drivers[0]!.shardOf({ type: 'hold-pool', key: 'x', customer: 'x', pool: 'GA', quantity: 1 });
  const holds = [...live.values()];
  const confirmed = await Promise.all(
    holds.map((h, i) =>
      drivers[i % CONNECTIONS]!.send({ type: 'confirm', key: `last-${h.holdId}`, customer: h.customer, holdId: h.holdId }, shard),
    ),
  );
  t.same([...new Set(confirmed.map((r) => r.type))], ['confirmed'], `all ${holds.length} live holds confirmed`);
  acknowledged.push(...confirmed);
  live.clear();
  const { row, table } = await consistent(t, acknowledged);
  t.same({ held: row.held, sold: row.sold }, { held: 0, sold: CAPACITY }, 'sold out');
  t.equal(table.sold, CAPACITY, 'the reservations add up to the capacity');
  const after = await drivers[0]!.send({ type: 'hold-pool', key: 'too-late', customer: 'too-late', pool: 'GA', quantity: 1 });
  t.match(after, { type: 'unavailable', seats: [], message: 'pool GA has 0 places left; 1 requested' }, 'a sold-out pool refuses');
});

t.test("Postgres refuses a write past the pool's capacity itself (the CHECK constraint)", async (t) => {
  const before = await poolRow();
  const client = await pool.connect();
  t.teardown(() => client.release());
  // Each write in a transaction that is rolled back: should the guard be missing, the engine's
  // next commit must not meet a row it did not write.
  const refusal = async (set: string) => {
    await client.query('BEGIN');
    try {
      await client.query(`UPDATE pools SET ${set}, version = version + 1 WHERE event_id = $1 AND pool_id = 'GA'`, [spec.eventId]);
      return undefined;
    } catch (error) {
      return error as { code?: string; constraint?: string };
    } finally {
      await client.query('ROLLBACK');
    }
  };
  t.match(
    await refusal('held = capacity - sold + 1'),
    { code: '23514', constraint: 'pools_check' },
    'one place held past the capacity: check_violation of pools_check',
  );
  t.match(await refusal('sold = capacity + 1, held = 0'), { code: '23514', constraint: 'pools_check' }, 'one place sold past it: the same');
  t.same(await refusal('held = capacity - sold'), undefined, 'up to the capacity is allowed (the guard refuses only past it)');
  t.same(await poolRow(), before, 'the row is as the engine wrote it');
});
