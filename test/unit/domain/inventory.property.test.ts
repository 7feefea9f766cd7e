/**
 * Property tests: random layouts and random command sequences from many customers, run through
 * the inventory and through the reference model, with the invariants checked after every step.
 *
 * Decisions are committed in batches, as the engine does: a batch's changes wait (`pending`) until
 * a commit, a restore or the end of the scenario, and an abort step undoes some of a customer's
 * hold creations of the pending batch, newest first, as the engine does when the event-wide limit
 * refuses them (ADR 0006 item 6): with the pool's written version, later decisions' pool counters
 * adjusted. Half the scenarios run with memories of 1-4 entries, so every eviction path runs.
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
  type InventoryCounts,
  type InventoryStats,
  type ShardChange,
  type ShardCommand,
  type ShardCounts,
  type ShardResult,
  type ShardSettings,
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

/** The memory bounds of a scenario: the defaults (nothing is forgotten in a scenario), or 1-4 entries each. */
type Bounds = Pick<ShardSettings, 'maxRememberedResults' | 'maxRememberedFailures' | 'maxEndedHolds'>;
const boundsArb: fc.Arbitrary<Bounds | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.record({
    maxRememberedResults: fc.integer({ min: 1, max: 4 }),
    maxRememberedFailures: fc.integer({ min: 1, max: 4 }),
    maxEndedHolds: fc.integer({ min: 1, max: 4 }),
  }),
);

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
  /** The limit refuses the last `count` creations of the pending batch of one customer (the `pick`th from the end's). */
  | { op: 'abort'; pick: number; count: number }
  | { op: 'commit' }
  /** The event's rules change (ShardInventory.applyRules). */
  | { op: 'rules'; limit: number; shortTtl: boolean }
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
  { weight: 3, arbitrary: fc.record({ op: fc.constant('abort' as const), pick: fc.nat(3), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('commit' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('rules' as const), limit: fc.integer({ min: 1, max: 5 }), shortTtl: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('restore' as const) }) },
);

/** A snapshot in comparable form: sorted, untouched seats filled in, entries past their TTL dropped. */
function normalize(snapshot: ShardSnapshot, allSeats: readonly string[], now: number) {
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

/** How often each answer type (and each abort and forgetting path) was seen across all runs: the generator must reach every one. */
const seen = new Map<string, number>();
const see = (label: string): void => {
  seen.set(label, (seen.get(label) ?? 0) + 1);
};

interface Sent {
  readonly command: ShardCommand;
  readonly decision: Decision;
}

/** What the shard remembered for a key, as the test tracks it: the full first result. */
interface Memo {
  readonly command: ShardCommand;
  readonly result: ShardResult;
  readonly at: number;
}

/** The shard as it was before a decision: what an abort of that decision must bring back. */
interface Before {
  readonly snapshot: ShardSnapshot;
  readonly counts: ShardCounts;
  readonly nextExpiryAt: number;
  readonly stats: InventoryStats;
}

/** A decision (or an expiry) of the batch not committed yet. */
interface Pending {
  readonly command: ShardCommand | undefined;
  /** The hold a successful creation (hold, hold-best, hold-pool, reserve) made. */
  readonly created: { readonly holdId: string; readonly pool: string | undefined; readonly quantity: number } | undefined;
  /** Changes as they will be written: an aborted creation keeps only its pool change, less its places. */
  changes: ShardChange[];
  readonly at: number;
  readonly before: Before | undefined;
  /** The success the store had for the key before (the model's and the test's), restored by an abort. */
  readonly persistedBefore: { readonly model: ReturnType<ReferenceModel['persistedEntry']>; readonly memo: Memo | undefined };
  /** Its place in the batch's history of decisions and aborts. */
  readonly seq: number;
  /** When it was aborted (the history's length then), or -1. */
  abortedAt: number;
}

/** The same command, whether or not it asks for a refusal to be decided again (not part of its fingerprint). */
function sameCommand(a: ShardCommand, b: ShardCommand): boolean {
  return JSON.stringify({ ...a, redecideRefusal: undefined }) === JSON.stringify({ ...b, redecideRefusal: undefined });
}

const CREATIONS: ReadonlySet<string> = new Set(['hold', 'hold-best', 'hold-pool', 'reserve']);

function runScenario(layoutInput: unknown, shardCount: number, bounds: Bounds | undefined, steps: readonly Step[]): void {
  const validation = validateLayout(layoutInput);
  assert.ok(validation.ok);
  const layout = validation.layout;
  const map = shardMap(layout, shardCount);
  const shard = 0;
  let settings = resolveShardSettings({
    holdTtlMs: TTL,
    customerLimit: 4,
    maxSeatsPerRequest: 3,
    idempotencyTtlMs: IDEMPOTENCY_TTL,
    ...bounds,
  });
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
  const pending: Pending[] = [];
  let history = 0;
  let now = 1_000_000;
  let keyCount = 0;
  /** The highest customer limit the scenario had: a customer keeps what they had when it is lowered. */
  let highestLimit = settings.customerLimit;

  const commit = (): void => {
    for (const entry of pending) store.apply(entry.changes, entry.at);
    pending.length = 0;
  };

  /** What the shard must remember per (customer, key): the last answer while its TTL lasts, unless it showed it forgot it. */
  let memo = new Map<string, Memo>();
  /** The last success per (customer, key): what the store has, and a restore brings back. */
  const memoPersisted = new Map<string, Memo>();

  const send = (command: ShardCommand): void => {
    const scope = `${command.customer}\u0000${command.key}`;
    const before: Before | undefined = CREATIONS.has(command.type)
      ? { snapshot: inventory.snapshot(), counts: inventory.counts(), nextExpiryAt: inventory.nextExpiryAt(), stats: inventory.stats() }
      : undefined;
    const persistedBefore = { model: model.persistedEntry(command.customer, command.key), memo: memoPersisted.get(scope) };
    const decision = inventory.decide(command, now);
    // A bounded memory forgets: the model accepts it only beyond the bound (and forgets too).
    const forgot = model.reconcile(command, now, decision);
    if (forgot.key !== undefined) {
      memo.delete(scope);
      see(`forgot a ${forgot.key}`);
    }
    if (forgot.ended) see('forgot an ended hold');
    const expected = model.decide(command, now);
    assert.deepEqual(project(decision.result), expected, `answer to ${JSON.stringify(command)}`);
    const first = memo.get(scope);
    // A command that asks for it is decided afresh after a refusal of its key.
    const redecided = command.redecideRefusal === true && first !== undefined && !first.result.ok;
    const live = !redecided && first !== undefined && first.at + IDEMPOTENCY_TTL > now;
    if (live && decision.result.type !== 'invalid') {
      if (sameCommand(first.command, command)) {
        assert.deepEqual(decision.result, first.result, 'a replay returns the first result');
        assert.equal(decision.changes.length, 0, 'a replay changes nothing');
        assert.equal(decision.replayed, true, 'and says it is a replay');
      } else {
        assert.equal(decision.result.type, 'idempotency-mismatch', 'a reused key with another command is refused');
      }
    } else if (decision.result.type !== 'invalid' && decision.result.type !== 'idempotency-mismatch') {
      const entry = { command, result: decision.result, at: now };
      memo.set(scope, entry);
      if (decision.result.ok) memoPersisted.set(scope, entry);
    }
    // Never another customer's answer, nor one past its TTL, nor one the shard had forgotten.
    if (!(live && sameCommand(first.command, command))) assert.equal(decision.replayed, undefined, 'only a replay says it is one');
    checkDecision(command, decision);
    const label = decision.result.type === 'held' ? `held by ${command.type}` : decision.result.type;
    see(label);
    const { result } = decision;
    const created =
      decision.replayed === undefined && CREATIONS.has(command.type)
        ? result.type === 'held'
          ? { holdId: result.hold.holdId, pool: result.hold.pool, quantity: result.hold.quantity }
          : result.type === 'confirmed'
            ? { holdId: result.reservation.holdId, pool: undefined, quantity: 1 }
            : undefined
        : undefined;
    pending.push({ command, created, changes: [...decision.changes], at: now, before, persistedBefore, seq: ++history, abortedAt: -1 });
    if (result.type === 'held') holds.push(result.hold);
    if (result.type === 'confirmed') holds.push(result.reservation);
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

  /** Undoes a creation of the pending batch as the engine does when the event-wide limit refuses it. */
  const abort = (entry: Pending): void => {
    const { holdId, pool, quantity } = entry.created!;
    const command = entry.command!;
    // The pool as the batch recorded it last: the engine writes it at that version.
    const written = pending
      .flatMap((e) => e.changes)
      .filter((c): c is Extract<ShardChange, { type: 'pool' }> => c.type === 'pool' && c.pool === pool)
      .at(-1);
    const expected = model.canAbort(command, holdId);
    const snapshot = inventory.snapshot();
    const undone = inventory.abort(holdId, written?.toVersion, true);
    assert.equal(undone, expected, `abort of ${holdId} (${JSON.stringify(command)})`);
    if (!undone) {
      assert.deepEqual(inventory.snapshot(), snapshot, 'an abort that cannot undo changes nothing');
      see('abort refused');
      return;
    }
    see('aborted');
    const index = pending.indexOf(entry);
    entry.abortedAt = ++history;
    entry.changes = entry.changes.filter((c) => c.type === 'pool');
    if (pool !== undefined) {
      // The places come out of every counter the batch recorded since (withoutHeldPlaces).
      for (const later of pending.slice(index)) {
        later.changes = later.changes.map((c) => (c.type === 'pool' && c.pool === pool ? { ...c, held: c.held - quantity } : c));
      }
    }
    model.undo(command, holdId, entry.persistedBefore.model);
    const scope = `${command.customer}\u0000${command.key}`;
    if (memo.get(scope)?.result.ok === true) memo.delete(scope);
    if (entry.persistedBefore.memo === undefined) memoPersisted.delete(scope);
    else memoPersisted.set(scope, entry.persistedBefore.memo);
    // Undoing the last decision that changed anything gives back the shard exactly as it was before
    // it (unless an earlier one was undone since: then as it was before both).
    if (
      pending.slice(index + 1).every((e) => e.abortedAt >= 0 || e.changes.length === 0) &&
      pending.slice(0, index).every((e) => e.abortedAt < entry.seq)
    ) {
      const b = entry.before!;
      const comparable = (s: ShardSnapshot) => {
        const n = normalize(s, ownSeats, now);
        // The pool keeps the version the engine writes (the places return, its version stays).
        const pools = n.pools.map((p) => ({ id: p.id, held: p.held, sold: p.sold }));
        // A small memory may have forgotten, for the undone success, an entry that does not come back.
        return bounds === undefined ? { ...n, pools } : { ...n, pools, idempotency: undefined, endedHolds: undefined };
      };
      assert.deepEqual(comparable(inventory.snapshot()), comparable(b.snapshot), 'abort gives the state back exactly');
      assert.deepEqual(inventory.counts(), b.counts, 'and the counts');
      assert.equal(inventory.nextExpiryAt(), b.nextExpiryAt, 'and the next expiry');
      const { holds: liveHolds, customers } = inventory.stats();
      assert.deepEqual({ holds: liveHolds, customers }, { holds: b.stats.holds, customers: b.stats.customers }, 'and the tallies');
      see('aborted exactly');
    }
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
    // sold + held ≤ capacity, per section/pool and overall; the counters agree with the seats and pools (no drift).
    const counts = inventory.counts();
    for (const unit of [...counts.sections, ...counts.pools, { id: 'overall', ...counts.overall }]) {
      assert.ok(unit.held >= 0 && unit.sold >= 0 && unit.held + unit.sold <= unit.total, `counts of ${unit.id}`);
      assert.equal(unit.available, unit.total - unit.held - unit.sold);
    }
    for (const section of counts.sections) {
      const states = snapshot.seats.filter((seat) => seat.id.startsWith(`${section.id}-`));
      const tally = (state: string) => states.filter((seat) => seat.state === state).length;
      const expected: InventoryCounts = { total: states.length, available: tally('available'), held: tally('held'), sold: tally('sold') };
      assert.deepEqual({ ...section, id: undefined }, { ...expected, id: undefined }, `counts of section ${section.id}`);
    }
    for (const pool of snapshot.pools) {
      const modelled = model.pools.get(pool.id)!;
      assert.deepEqual({ held: pool.held, sold: pool.sold }, { held: modelled.held, sold: modelled.sold }, `pool ${pool.id}`);
    }
    // The timer is armed for the earliest live hold.
    assert.equal(inventory.nextExpiryAt(), Math.min(Infinity, ...snapshot.liveHolds.map((h) => h.expiresAt)), 'nextExpiryAt');
    // Limits respected (a customer keeps what they had when the limit was lowered).
    const usage = new Map<string, number>();
    for (const hold of snapshot.liveHolds) usage.set(hold.customer, (usage.get(hold.customer) ?? 0) + hold.quantity);
    for (const r of snapshot.reservedByCustomer) usage.set(r.customer, (usage.get(r.customer) ?? 0) + r.quantity);
    for (const [who, used] of usage) assert.ok(used <= highestLimit, `${who} uses ${used} > limit`);
    // Memory within its bounds, its sizes as counted.
    const stats = inventory.stats();
    assert.equal(stats.holds, snapshot.liveHolds.length, 'live holds counted');
    assert.equal(stats.customers, usage.size, 'one tally per customer with a hold or a reservation');
    assert.equal(stats.rememberedResults, snapshot.idempotency.length, 'remembered successes counted');
    assert.equal(stats.endedHolds, (snapshot.endedHolds ?? []).length, 'ended holds counted');
    assert.ok(stats.rememberedResults <= settings.maxRememberedResults, 'successes within their bound');
    assert.ok(stats.rememberedFailures <= settings.maxRememberedFailures, 'failures within their bound');
    assert.ok(stats.endedHolds <= settings.maxEndedHolds, 'ended holds within their bound');
    // The changes, as the batch will write them, describe exactly the in-memory state (what a small
    // memory remembers of keys and ended holds is part of what is stored).
    let persisted = store;
    if (pending.length > 0) {
      persisted = new PersistedShard(map.poolsOfShard(shard), store.snapshot());
      for (const entry of pending) persisted.apply(entry.changes, entry.at);
    }
    const stored = normalize(persisted.snapshot(), ownSeats, now);
    const state = normalize(snapshot, ownSeats, now);
    assert.deepEqual(
      { ...stored, idempotency: [], endedHolds: [] },
      { ...state, idempotency: [], endedHolds: [] },
      'folded changes = state',
    );
    if (bounds === undefined) {
      assert.deepEqual(stored.idempotency, state.idempotency, 'every stored key is remembered');
      assert.deepEqual(stored.endedHolds, state.endedHolds, 'every stored ended hold is remembered');
    } else {
      for (const record of state.idempotency) {
        assert.deepEqual(
          record,
          stored.idempotency.find((r) => r.customer === record.customer && r.key === record.key),
          'a remembered key is stored',
        );
      }
      for (const record of state.endedHolds) {
        assert.deepEqual(
          record,
          stored.endedHolds.find((r) => r.holdId === record.holdId),
          'a remembered ended hold is stored',
        );
      }
    }
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
        // Expiries join the batch: a hold of it that expired cannot be undone any more.
        pending.push({
          command: undefined,
          created: undefined,
          changes,
          at: now,
          before: undefined,
          persistedBefore: { model: undefined, memo: undefined },
          seq: ++history,
          abortedAt: -1,
        });
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
      case 'abort': {
        const creations = pending.filter((e) => e.created !== undefined && e.abortedAt < 0);
        if (creations.length === 0) break;
        const refused = creations[Math.max(0, creations.length - 1 - step.pick)]!.command!.customer;
        const theirs = creations.filter((e) => e.command!.customer === refused);
        for (const entry of theirs.slice(-step.count).reverse()) abort(entry);
        break;
      }
      case 'commit':
        commit();
        break;
      case 'rules': {
        const rules = { holdTtlMs: step.shortTtl ? TTL / 2 : TTL, customerLimit: step.limit };
        inventory.applyRules(rules);
        settings = resolveShardSettings({ ...settings, ...rules });
        assert.deepEqual(inventory.settings, settings, 'the new rules, every other setting kept');
        model.applyRules(settings);
        highestLimit = Math.max(highestLimit, step.limit);
        break;
      }
      case 'restore': {
        commit();
        inventory = ShardInventory.restore({ map, shard }, settings, store.snapshot(), now, newId);
        model.restored();
        memo = new Map(memoPersisted);
        break;
      }
    }
    checkInvariants();
  }
}

t.test('random command sequences agree with the reference model and keep every invariant', async (t) => {
  fc.assert(
    fc.property(
      layoutArb,
      boundsArb,
      fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'max' }),
      ({ layout, shards }, bounds, steps) => {
        runScenario(layout, shards, bounds, steps);
      },
    ),
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
    'aborted',
    'aborted exactly',
    'abort refused',
    'forgot a success',
    'forgot a failure',
    'forgot an ended hold',
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
