/**
 * A hot seat straight into a real engine: N customers' reserves of one seat, all in flight at once,
 * sent to its shard over NATS the way the ingress sends them — but without the ingress, whose
 * SeatFlights and SoldSeats answer nearly all of such a rush themselves (in the HTTP flash-sale
 * test one request of 1,000 reaches the shard). Here every one of them reaches the shard, so the
 * shard's own one-sale-per-seat rule is what is tested: exactly one is sold the seat, the N − 1
 * others are refused as unavailable, and the database and the engine's counters agree.
 */
import t from 'tap';
import type { ReserveCommand, ShardResult } from '../../../src/domain/commands.js';
import { inventoryViolations } from '../../support/invariants.js';
import { engineWithDrivers } from '../../support/shard-driver.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

/**
 * Connections the reserves are spread over. Each connection's client sends the commands it is
 * given in one turn as one message (protocol.ts), so one connection would make the whole rush one
 * message, decided in one synchronous stretch before the winner's commit could even begin. With
 * several, the shard receives several messages, and those it decides while the winner's commit is
 * under way meet the seat sold but not yet committed (their refusal names it `pending`).
 */
const CONNECTIONS = 8;

const pool = await testDatabase();
t.teardown(() => pool.end());
const spec = await provisionTestEvent(pool, { layout: testLayout({ rows: 4, seats: 10 }), shardCount: 2, customerLimit: 8 });
const { engine, drivers } = await engineWithDrivers(t, spec, { connections: CONNECTIONS, name: 'hot-seat-test', deadlineMs: 30_000 });
// Owned is not yet serving everywhere: one command on each shard, answered, before any count is taken.
for (const [shard, seats] of [0, 1].map((s) => [s, drivers[0]!.map.seatsOfShard(s)] as const)) {
  const warmup = await drivers[0]!.send({ type: 'hold', key: `warmup-${shard}`, customer: `warmup-${shard}`, seats: [seats[0]!] });
  // Thrown, not asserted: an assertion at the top level, before the subtests, would end the file's plan.
  if (warmup.type !== 'held') throw new Error(`shard ${shard} does not serve: ${JSON.stringify(warmup)}`);
}

/** The engine's decisions so far, with `labels` (all of them when none); 0 before its first. */
const decisions = (labels: Readonly<Record<string, string>> = {}) => engine.count('sentinel_engine_decisions_total', labels);

async function seatRow(seat: string) {
  const { rows } = await pool.query<{ state: string; version: number; hold_id: string | null }>(
    'SELECT state, version, hold_id FROM seats WHERE event_id = $1 AND seat_id = $2',
    [spec.eventId, seat],
  );
  return rows[0]!;
}

// One seat of each shard: the 1,000 on shard 1 do not meet the 50's sold seat on shard 0.
for (const [shard, clients] of [
  [0, 50],
  [1, 1000],
] as const) {
  const seat = drivers[0]!.map.seatsOfShard(shard)[5]!;
  t.test(
    `${clients} customers' reserves of ${seat}, all in flight at once: one sale, ${clients - 1} refusals, ${clients} decisions`,
    async (t) => {
      const before = await seatRow(seat);
      t.same(before, { state: 'available', version: 0, hold_id: null }, 'the seat is available');
      const decided = { all: await decisions(), confirmed: await decisions({ result: 'confirmed' }) };
      const unavailableBefore = await decisions({ result: 'unavailable' });

      // Each its own customer and key; every command is sent before any answer is awaited.
      const commands: ReserveCommand[] = Array.from({ length: clients }, (_, i) => ({
        type: 'reserve',
        key: `hot-${seat}-${i}`,
        customer: `fan-${seat}-${i}`,
        seat,
      }));
      const started = Date.now();
      const outcomes = await Promise.allSettled(commands.map((command, i) => drivers[i % CONNECTIONS]!.send(command)));
      const elapsed = Date.now() - started;
      const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
      t.same(failures.slice(0, 5), [], `every command was answered (${failures.length} failed)`);
      const results = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      const types = new Map<string, number>();
      for (const r of results) types.set(r.type, (types.get(r.type) ?? 0) + 1);
      t.same(Object.fromEntries(types), { confirmed: 1, unavailable: clients - 1 }, `one sale, ${clients - 1} refusals (in ${elapsed} ms)`);

      const winnerIndex = results.findIndex((r) => r.type === 'confirmed');
      // Nobody sold (every command failed, say): the checks below are all about the winner.
      if (winnerIndex < 0) return t.fail('no reserve was sold the seat');
      const winner = results[winnerIndex] as Extract<ShardResult, { type: 'confirmed' }>;
      t.match(
        winner.reservation,
        { customer: commands[winnerIndex]!.customer, seats: [seat], quantity: 1 },
        "the winner's own reservation",
      );
      // A refusal names the seat; as sold only once the sale is committed, and then to its buyer.
      const losers = results.filter((r): r is Extract<ShardResult, { type: 'unavailable' }> => r.type === 'unavailable');
      const wrong = losers.filter(
        (r) =>
          JSON.stringify(r.seats) !== JSON.stringify([seat]) ||
          (r.sold !== undefined && (JSON.stringify(r.sold) !== JSON.stringify([seat]) || r.soldTo?.[0] !== winner.reservation.customer)) ||
          (r.pending !== undefined && r.sold?.includes(seat) === true),
      );
      t.same(wrong.slice(0, 3), [], 'every refusal names the seat, and its buyer only as the winner');
      t.comment(
        `refusals naming the seat sold: ${losers.filter((r) => r.sold !== undefined).length}; ` +
          `its sale pending: ${losers.filter((r) => r.pending !== undefined).length}; neither: ` +
          losers.filter((r) => r.sold === undefined && r.pending === undefined).length,
      );

      // The engine's own count: every command was decided once (nothing was lost and retried).
      t.equal((await decisions()) - decided.all, clients, `the engine made ${clients} decisions`);
      t.equal((await decisions({ result: 'confirmed' })) - decided.confirmed, 1, 'one of them a sale');
      t.equal((await decisions({ result: 'unavailable' })) - unavailableBefore, clients - 1, 'the others refusals as unavailable');

      // The database: the seat row written once, one hold and one reservation, one message to publish.
      t.same(
        await seatRow(seat),
        { state: 'sold', version: before.version + 1, hold_id: winner.reservation.holdId },
        "the seat row was written once, by the winner's hold",
      );
      const { rows: holds } = await pool.query<{ hold_id: string; state: string }>(
        'SELECT hold_id, state FROM holds WHERE event_id = $1 AND $2 = ANY(seats)',
        [spec.eventId, seat],
      );
      t.same(holds, [{ hold_id: winner.reservation.holdId, state: 'confirmed' }], 'one hold of the seat');
      const { rows: reservations } = await pool.query<{ reservation_id: string; customer: string }>(
        'SELECT reservation_id, customer FROM reservations WHERE event_id = $1 AND $2 = ANY(seats)',
        [spec.eventId, seat],
      );
      t.same(
        reservations,
        [{ reservation_id: winner.reservation.reservationId, customer: winner.reservation.customer }],
        'one reservation in Postgres',
      );
      const { rows: outbox } = await pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM outbox WHERE event_id = $1 AND message_key = $2',
        [spec.eventId, winner.reservation.reservationId],
      );
      t.equal(outbox[0]!.n, 1, 'one outbox row for it');
      const { rows: usage } = await pool.query<{ customers: number; used: number }>(
        `SELECT count(*)::int AS customers, coalesce(sum(used), 0)::int AS used FROM customer_usage
        WHERE event_id = $1 AND customer LIKE $2 AND used > 0`,
        [spec.eventId, `fan-${seat}-%`],
      );
      t.same(usage, [{ customers: 1, used: 1 }], "one customer's usage counts the seat");
      t.same(await inventoryViolations(pool, spec.eventId, results), [], 'the invariants hold');

      // The rush met the sale before its commit ended (its refusals name the seat pending): a
      // customer who comes after it meets the sale committed, and learns the buyer.
      const late = await drivers[0]!.send({ type: 'reserve', key: `late-${seat}`, customer: `late-${seat}`, seat });
      t.match(
        late,
        { type: 'unavailable', seats: [seat], sold: [seat], soldTo: [winner.reservation.customer] },
        'a later reserve is refused: sold',
      );
      t.equal((await seatRow(seat)).version, before.version + 1, 'and writes nothing');
    },
  );
}
