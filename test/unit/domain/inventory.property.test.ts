/**
 * Property tests: random layouts and random command sequences from many customers, run through
 * the inventory and through the reference model, with the invariants checked after every step.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import {
  PersistedShard,
  resolveShardSettings,
  shardMap,
  ShardInventory,
  validateLayout,
  type Decision,
  type ShardChange,
  type ShardCommand,
  type ShardResult,
  type ShardSnapshot,
} from '../../../src/domain/index.js';
import { counterIds } from './support/fixtures.js';
import { project, ReferenceModel } from './support/reference-model.js';

const TTL = 1_000;
const IDEMPOTENCY_TTL = 5_000;
const CUSTOMERS = ['ann', 'bob', 'cy', 'dee', 'eve', 'fay'];

const layoutArb = fc
  .record({
    sections: fc.array(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
    pools: fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 2 }),
    shards: fc.integer({ min: 1, max: 3 }),
  })
  .map(({ sections, pools, shards }) => {
    const layout = {
      sections: sections.map((rowSeats, s) => ({ id: 'ABC'[s]!, rows: rowSeats.map((seats, r) => ({ id: String(r + 1), seats })) })),
      pools: pools.map((capacity, p) => ({ id: `GA${p + 1}`, capacity })),
    };
    const units = sections.flat().length + pools.length;
    return { layout, shards: Math.min(shards, units) };
  });

/** One step of a scenario; seat/hold references are resolved against the scenario's state when run. */
type Step =
  | { op: 'hold'; customer: number; seats: number[] }
  | { op: 'best'; customer: number; section: number; quantity: number; strict: boolean }
  | { op: 'pool'; customer: number; pool: number; quantity: number }
  /** `owner`: sent by the hold's owner (else by `customer`, usually someone else). */
  | { op: 'confirm' | 'release'; customer: number; hold: number; owner: boolean }
  | { op: 'reserve'; customer: number; seat: number }
  | { op: 'tick'; ms: number; sweep: boolean }
  | { op: 'replay' | 'reuse' | 'retry'; index: number }
  /** Another customer happens to send the same key (keys are per customer). */
  | { op: 'borrow'; index: number; customer: number }
  | { op: 'restore' };

const customer = fc.integer({ min: 0, max: CUSTOMERS.length - 1 });
/** Mostly sensible sizes, sometimes out of range (0, or above the per-request maximum of 3). */
const quantity = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 4, 5) });
/** How far back a replay reaches: often one of the last few commands. */
const recent = fc.oneof(fc.nat(2), fc.nat(200));
const seatRefs = fc.oneof(
  { weight: 9, arbitrary: fc.array(fc.nat(80), { minLength: 1, maxLength: 3 }) },
  { weight: 1, arbitrary: fc.array(fc.nat(80), { maxLength: 5 }) },
);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('hold' as const), customer, seats: seatRefs }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('best' as const),
      customer,
      section: fc.oneof({ weight: 6, arbitrary: fc.nat(2) }, { weight: 1, arbitrary: fc.constant(3) }),
      quantity,
      strict: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('pool' as const), customer, pool: fc.nat(2), quantity }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('confirm' as const), customer, hold: fc.nat(40), owner: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('release' as const), customer, hold: fc.nat(40), owner: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('reserve' as const), customer, seat: fc.nat(80) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('tick' as const),
      // Often exactly a TTL (or one less) after the last step, to land on expiry boundaries.
      ms: fc.oneof(fc.integer({ min: 0, max: 1_500 }), fc.constantFrom(TTL, TTL - 1, 1, IDEMPOTENCY_TTL)),
      sweep: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('replay' as const), index: recent }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reuse' as const), index: recent }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('retry' as const), index: recent }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('borrow' as const), index: recent, customer }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('restore' as const) }) },
);

/** Normalizes a snapshot for comparison: sorted, untouched seats filled in, entries past their TTL dropped. */
function normalize(snapshot: ShardSnapshot, allSeats: readonly string[], now: number): unknown {
  const seats = new Map<string, { id: string; state: string; holdId: string | null; version: number }>(
    allSeats.map((id) => [id, { id, state: 'available', holdId: null, version: 0 }]),
  );
  for (const seat of snapshot.seats) seats.set(seat.id, { ...seat, holdId: seat.state === 'available' ? null : seat.holdId });
  const by =
    <T>(f: (x: T) => string) =>
    (a: T, b: T) =>
      f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0;
  return {
    seats: [...seats.values()].sort(by((s) => s.id)),
    pools: [...snapshot.pools].sort(by((p) => p.id)),
    liveHolds: [...snapshot.liveHolds].sort(by((h) => h.holdId)),
    reservedByCustomer: snapshot.reservedByCustomer.filter((r) => r.quantity > 0).sort(by((r) => r.customer)),
    idempotency: snapshot.idempotency
      .filter((r) => r.at + IDEMPOTENCY_TTL > now)
      .map((r) => ({ key: r.key, customer: r.customer, fingerprint: r.fingerprint, result: r.result, at: r.at }))
      .sort(by((r) => `${r.customer}\u0000${r.key}`)),
    endedHolds: (snapshot.endedHolds ?? []).filter((e) => e.at + IDEMPOTENCY_TTL > now).sort(by((e) => e.holdId)),
  };
}

function seatsIn(changes: readonly ShardChange[]): string[] {
  return changes.flatMap((c) => (c.type === 'seat' ? [c.seat] : [])).sort();
}

/** How often each answer type was seen across all runs: the generator must reach every outcome. */
const seen = new Map<string, number>();

interface Sent {
  readonly command: ShardCommand;
  readonly decision: Decision;
}

/** The same command, whether or not it asks for a refusal to be decided again (not part of its fingerprint). */
function sameCommand(a: ShardCommand, b: ShardCommand): boolean {
  return JSON.stringify({ ...a, redecideRefusal: undefined }) === JSON.stringify({ ...b, redecideRefusal: undefined });
}

function runScenario(layoutInput: unknown, shardCount: number, steps: readonly Step[]): void {
  const validation = validateLayout(layoutInput);
  assert.ok(validation.ok);
  const layout = validation.layout;
  const map = shardMap(layout, shardCount);
  const shard = 0;
  const settings = resolveShardSettings({ holdTtlMs: TTL, customerLimit: 4, maxSeatsPerRequest: 3, idempotencyTtlMs: IDEMPOTENCY_TTL });
  const newId = counterIds();
  let inventory = ShardInventory.create({ map, shard }, settings, newId);
  const model = new ReferenceModel(layout, map, shard, settings);
  const store = new PersistedShard(map.poolsOfShard(shard));
  const ownSeats = map.seatsOfShard(shard);
  // Candidate seat ids: this shard's, other shards', and ids that are not seats at all.
  const seatPool = [
    ...ownSeats,
    ...ownSeats,
    ...ownSeats,
    ...map.layout.sections.flatMap((s) => s.rows.map((r) => `${s.id}-${r.id}-1`)),
    'A-1-0',
    'A-01-1',
    'Z-1-1',
    'A-99-1',
    'nonsense',
  ];
  const poolIds = [...layout.pools.map((p) => p.id), 'NOPE'];
  const sections = ['A', 'B', 'C', 'Q'];
  const holds: { holdId: string; customer: string }[] = [];
  const sent: Sent[] = [];
  let generation = 0;
  let now = 1_000_000;
  let keyCount = 0;

  const commit = (changes: readonly ShardChange[], at: number): void => store.apply(changes, at);

  /** What the shard must remember per (customer, key): the first answer, while its TTL lasts (failures: until a restore). */
  const memo = new Map<string, { command: ShardCommand; result: ShardResult; at: number; generation: number }>();

  const send = (command: ShardCommand): void => {
    const decision = inventory.decide(command, now);
    const expected = model.decide(command, now);
    assert.deepEqual(project(decision.result), expected, `answer to ${JSON.stringify(command)}`);
    const scope = `${command.customer}\u0000${command.key}`;
    const first = memo.get(scope);
    // A command that asks for it is decided afresh after a refusal of its key.
    const redecided = command.redecideRefusal === true && first !== undefined && !first.result.ok;
    const live =
      !redecided && first !== undefined && first.at + IDEMPOTENCY_TTL > now && (first.result.ok || first.generation === generation);
    if (live && decision.result.type !== 'invalid') {
      if (sameCommand(first.command, command)) {
        assert.deepEqual(decision.result, first.result, 'a replay returns the first result');
        assert.equal(decision.changes.length, 0, 'a replay changes nothing');
        assert.equal(decision.replayed, true, 'and says it is a replay');
      } else {
        assert.equal(decision.result.type, 'idempotency-mismatch', 'a reused key with another command is refused');
      }
    } else if (decision.result.type !== 'invalid' && decision.result.type !== 'idempotency-mismatch') {
      memo.set(scope, { command, result: decision.result, at: now, generation });
    }
    if (!(live && sameCommand(first.command, command))) assert.equal(decision.replayed, undefined, 'only a replay says it is one');
    checkDecision(command, decision);
    const label = decision.result.type === 'held' ? `held by ${command.type}` : decision.result.type;
    seen.set(label, (seen.get(label) ?? 0) + 1);
    commit(decision.changes, now);
    if (decision.result.type === 'held') holds.push(decision.result.hold);
    if (decision.result.type === 'confirmed') holds.push(decision.result.reservation);
    sent.push({ command, decision });
  };

  const checkDecision = (command: ShardCommand, decision: Decision): void => {
    const { result, changes } = decision;
    if (!result.ok) {
      assert.equal(changes.length, 0, 'a failure changes nothing');
      return;
    }
    if (changes.length === 0) return; // a replay, checked in send()
    const idempotency = changes.filter((c) => c.type === 'idempotency');
    assert.equal(idempotency.length, 1, 'a success is remembered with its commit');
    if (result.type === 'held' && command.type === 'hold-best') {
      const seats = result.hold.seats;
      assert.equal(seats.length, command.quantity);
      const parts = seats.map((s) => s.split('-'));
      assert.ok(
        parts.every(([sec, row]) => sec === command.section && row === parts[0]![1]),
        'best-available seats share one row of the section',
      );
      const numbers = parts.map((p) => Number(p[2]));
      numbers.forEach((n, i) => assert.equal(n, numbers[0]! + i, 'best-available seats are adjacent'));
    }
    if (result.type === 'held') assert.deepEqual(seatsIn(changes), [...result.hold.seats].sort(), 'a hold changes exactly its seats');
  };

  const checkInvariants = (): void => {
    const snapshot = inventory.snapshot();
    // No seat held or sold twice: each held seat belongs to exactly one live hold, and agrees with the model.
    const holders = new Map<string, string>();
    for (const hold of snapshot.liveHolds) {
      for (const seat of hold.seats) {
        assert.equal(holders.has(seat), false, `seat ${seat} in two live holds`);
        holders.set(seat, hold.holdId);
      }
    }
    for (const seat of snapshot.seats) {
      if (seat.state === 'held') assert.equal(holders.get(seat.id), seat.holdId, `held seat ${seat.id} belongs to its hold`);
      else assert.equal(holders.has(seat.id), false, `seat ${seat.id} is ${seat.state} yet in a live hold`);
      const modelled = model.seats.get(seat.id)!;
      assert.equal(seat.state, modelled.state, `seat ${seat.id} state`);
    }
    // sold + held ≤ capacity, per section/pool and overall.
    const counts = inventory.counts();
    for (const unit of [...counts.sections, ...counts.pools, { id: 'overall', ...counts.overall }]) {
      assert.ok(unit.held >= 0 && unit.sold >= 0 && unit.held + unit.sold <= unit.total, `counts of ${unit.id}`);
      assert.equal(unit.available, unit.total - unit.held - unit.sold);
    }
    for (const pool of snapshot.pools) {
      const modelled = model.pools.get(pool.id)!;
      assert.deepEqual({ held: pool.held, sold: pool.sold }, { held: modelled.held, sold: modelled.sold }, `pool ${pool.id}`);
    }
    // The timer is armed for the earliest live hold.
    assert.equal(inventory.nextExpiryAt(), Math.min(Infinity, ...snapshot.liveHolds.map((h) => h.expiresAt)), 'nextExpiryAt');
    // Limits respected.
    const usage = new Map<string, number>();
    for (const hold of snapshot.liveHolds) usage.set(hold.customer, (usage.get(hold.customer) ?? 0) + hold.quantity);
    for (const r of snapshot.reservedByCustomer) usage.set(r.customer, (usage.get(r.customer) ?? 0) + r.quantity);
    for (const [who, used] of usage) assert.ok(used <= settings.customerLimit, `${who} uses ${used} > limit`);
    // The persisted changes describe exactly the in-memory state.
    assert.deepEqual(normalize(store.snapshot(), ownSeats, now), normalize(snapshot, ownSeats, now), 'folded changes = state');
  };

  for (const step of steps) {
    const who = CUSTOMERS[('customer' in step ? step.customer : 0) % CUSTOMERS.length]!;
    const key = `k${++keyCount}`;
    switch (step.op) {
      case 'hold':
        send({ type: 'hold', key, customer: who, seats: step.seats.map((i) => seatPool[i % seatPool.length]!) });
        break;
      case 'best':
        send({
          type: 'hold-best',
          key,
          customer: who,
          section: sections[step.section]!,
          quantity: step.quantity,
          strictOrphans: step.strict,
        });
        break;
      case 'pool':
        send({ type: 'hold-pool', key, customer: who, pool: poolIds[step.pool % poolIds.length]!, quantity: step.quantity });
        break;
      case 'confirm':
      case 'release': {
        const target =
          holds.length === 0 || step.hold >= holds.length * 3 ? undefined : holds[holds.length - 1 - (step.hold % holds.length)]!;
        const sender = step.owner && target !== undefined ? target.customer : who;
        send({ type: step.op, key, customer: sender, holdId: target?.holdId ?? 'hold-none' });
        break;
      }
      case 'reserve':
        send({ type: 'reserve', key, customer: who, seat: seatPool[step.seat % seatPool.length]! });
        break;
      case 'tick': {
        now += step.ms;
        if (!step.sweep) break;
        const dueSeats = model.expireDue(now);
        const changes = inventory.expireDue(now);
        const ended = changes.flatMap((c) => (c.type === 'hold-ended' ? [c.holdId] : [])).sort();
        assert.deepEqual(ended, dueSeats.holdIds, 'exactly the due holds expire');
        assert.deepEqual(seatsIn(changes), dueSeats.seats, 'expired holds release exactly their seats');
        assert.ok(
          changes.every((c) => c.type !== 'seat' || (c.state === 'available' && c.holdId === null)),
          'expiry only frees seats',
        );
        assert.ok(inventory.nextExpiryAt() > now, 'nothing due is left');
        commit(changes, now);
        break;
      }
      case 'replay': {
        if (sent.length > 0) send(sent[sent.length - 1 - (step.index % sent.length)]!.command);
        break;
      }
      case 'retry': {
        // The same command again, asking for a new decision if its first answer was a refusal (as the ingress does).
        if (sent.length > 0) send({ ...sent[sent.length - 1 - (step.index % sent.length)]!.command, redecideRefusal: true });
        break;
      }
      case 'reuse': {
        // The same key with a different command.
        if (sent.length === 0) break;
        const first = sent[sent.length - 1 - (step.index % sent.length)]!;
        const other: ShardCommand =
          first.command.type === 'reserve'
            ? { type: 'release', key: first.command.key, customer: first.command.customer, holdId: 'hold-1' }
            : { type: 'reserve', key: first.command.key, customer: first.command.customer, seat: ownSeats[0] ?? 'A-1-1' };
        send(other);
        break;
      }
      case 'borrow': {
        if (sent.length === 0) break;
        const first = sent[sent.length - 1 - (step.index % sent.length)]!;
        send({ ...first.command, customer: who });
        break;
      }
      case 'restore': {
        const snapshot = store.snapshot();
        inventory = ShardInventory.restore({ map, shard }, settings, snapshot, now, newId);
        model.forgetFailures();
        generation++;
        break;
      }
    }
    checkInvariants();
  }
}

t.test('random command sequences agree with the reference model and keep every invariant', async (t) => {
  fc.assert(
    fc.property(layoutArb, fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'max' }), ({ layout, shards }, steps) => {
      runScenario(layout, shards, steps);
    }),
    { numRuns: Number(process.env['DOMAIN_PROPERTY_RUNS'] ?? 1500) },
  );
  t.pass('all runs agreed');
  t.comment(JSON.stringify(Object.fromEntries([...seen].sort())));
  for (const outcome of [
    'held by hold',
    'held by hold-best',
    'held by hold-pool',
    'confirmed',
    'released',
    'unavailable',
    'limit-exceeded',
    'hold-not-found',
    'hold-expired',
    'hold-confirmed',
    'invalid',
    'idempotency-mismatch',
  ]) {
    t.ok((seen.get(outcome) ?? 0) > 0, `the scenarios reached ${outcome}`);
  }
});

t.test('hot seat: many customers, one seat, exactly one winner', async (t) => {
  const validation = validateLayout({ sections: [{ id: 'A', rows: [{ id: '1', seats: 1 }] }] });
  assert.ok(validation.ok);
  const map = shardMap(validation.layout, 1);
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...CUSTOMERS), { minLength: 1, maxLength: 40 }), (who) => {
      const inventory = ShardInventory.create({ map, shard: 0 }, resolveShardSettings(), counterIds());
      const results: ShardResult[] = who.map(
        (c, i) => inventory.decide({ type: 'reserve', key: `k${i}`, customer: c, seat: 'A-1-1' }, 1).result,
      );
      assert.equal(results.filter((r) => r.ok).length, 1);
      assert.ok(results.slice(1).every((r) => r.type === 'unavailable'));
    }),
    { numRuns: 200 },
  );
  t.pass('one winner every time');
});
