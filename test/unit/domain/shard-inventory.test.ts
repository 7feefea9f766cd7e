import t from 'tap';
import type { HoldSeatsCommand, ShardChange, ShardCommand, ShardResult } from '../../../src/domain/index.js';
import { confirm, fixture, hold, holdBest, holdPool, key, release, reserve, rows } from './support/fixtures.js';

const NOW = 1_700_000_000_000;
const TTL = 60_000;

const theatre = {
  sections: [
    { id: 'A', rows: rows(3, 10) },
    { id: 'B', rows: rows(2, 6) },
  ],
  pools: [{ id: 'GA', capacity: 5 }],
};

function held(result: ShardResult) {
  if (result.type !== 'held') throw new Error(`expected held, got ${JSON.stringify(result)}`);
  return result.hold;
}

function states(changes: readonly ShardChange[]) {
  return changes.flatMap((c) => (c.type === 'seat' ? [`${c.seat}:${c.state}:${c.fromVersion}->${c.toVersion}`] : []));
}

t.test('hold: specific seats, all or nothing', async (t) => {
  const { inventory } = fixture(theatre);
  const command = hold('ann', ['A-1-1', 'A-1-2']);
  const { result, changes } = inventory.decide(command, NOW);
  const view = held(result);
  t.same(view, { holdId: 'hold-1', customer: 'ann', seats: ['A-1-1', 'A-1-2'], quantity: 2, createdAt: NOW, expiresAt: NOW + TTL });
  t.same(
    changes.map((c) => c.type),
    ['hold-created', 'seat', 'seat', 'idempotency'],
  );
  t.same(states(changes), ['A-1-1:held:0->1', 'A-1-2:held:0->1']);
  t.same(changes[3], { type: 'idempotency', key: command.key, customer: 'ann', fingerprint: 'A-1-1,A-1-2', result, at: NOW });

  const clash = inventory.decide(hold('bob', ['A-1-3', 'A-1-2', 'A-1-1']), NOW);
  t.same(clash.result, { ok: false, type: 'unavailable', seats: ['A-1-2', 'A-1-1'], message: 'seats A-1-2, A-1-1 are not available' });
  t.same(clash.changes, [], 'a loser changes nothing');
  t.ok(inventory.decide(hold('bob', ['A-1-3']), NOW).result.ok, 'the free seat of the failed request was not taken');
  t.same(inventory.counts().overall, { total: 47, available: 44, held: 3, sold: 0 });
});

t.test('invalid commands: precise field and message, nothing changes', async (t) => {
  const { inventory } = fixture(theatre, { shards: 3 });
  // Shard 0 owns section A's rows; B and GA live elsewhere.
  const cases: [ShardCommand, string, RegExp][] = [
    [hold('ann', []), 'seats', /at least one seat/],
    [hold('ann', ['A-1-1', 'Z-1-1']), 'seats[1]', /unknown seat "Z-1-1"/],
    [hold('ann', ['A-1-11']), 'seats[0]', /unknown seat "A-1-11"/],
    [hold('ann', ['A-1-01']), 'seats[0]', /unknown seat/],
    [hold('ann', ['A-1-1', 'B-1-1']), 'seats[1]', /seat B-1-1 belongs to shard \d, not shard 0/],
    [hold('ann', ['A-1-1', 'A-1-2', 'A-1-1']), 'seats[2]', /duplicate seat A-1-1 \(also seats\[0\]\)/],
    [hold('ann', ['A-1-3', 'A-1-2', 'A-1-2', 'A-1-3']), 'seats[2]', /duplicate seat A-1-2 \(also seats\[1\]\)$/],
    [hold('ann', ['A-1-3', 'A-1-1', 'A-1-3', 'A-1-3']), 'seats[2]', /duplicate seat A-1-3 \(also seats\[0\]\)$/],
    [{ type: 'hold', key: key(), customer: 'ann', seats: 'A-1-1' } as unknown as ShardCommand, 'seats', /array of seat ids/],
    [holdBest('ann', 'A', 0), 'quantity', /at least 1/],
    [holdBest('ann', 'A', 2.5), 'quantity', /integer/],
    [holdBest('ann', 'Z', 2), 'section', /unknown section "Z"/],
    [holdBest('ann', 'B', 2), 'section', /section B has no rows in shard 0 \(its shards: \d\)/],
    [holdPool('ann', 'GA', 1), 'pool', /pool GA belongs to shard 2, not shard 0/],
    [holdPool('ann', 'VIP', 1), 'pool', /unknown pool "VIP"/],
    [holdPool('ann', 'GA', -1), 'quantity', /at least 1/],
    [reserve('ann', 'B-2-6'), 'seat', /belongs to shard/],
    [confirm('ann', ''), 'holdId', /holdId must be a string/],
    [{ type: 'hold', key: '', customer: 'ann', seats: ['A-1-1'] }, 'key', /key must be/],
    [{ type: 'hold', key: 'a\u0000b', customer: 'ann', seats: ['A-1-1'] }, 'key', /without NUL/],
    // Stored with a success in the commit's JSON, which jsonb refuses with a lone surrogate (as for a customer).
    [{ type: 'hold', key: 'a\ud800', customer: 'ann', seats: ['A-1-1'] }, 'key', /without NUL or a lone surrogate/],
    [{ type: 'hold', key: '\udfffb', customer: 'ann', seats: ['A-1-1'] }, 'key', /lone surrogate/],
    [{ type: 'hold', key: '\udc00\ud800', customer: 'ann', seats: ['A-1-1'] }, 'key', /lone surrogate/],
    [{ type: 'hold', key: key(), customer: '', seats: ['A-1-1'] }, 'customer', /customer must be/],
    // Postgres's jsonb, which the commit is, refuses NUL: such a customer would fail its whole batch.
    [{ type: 'hold', key: key(), customer: 'a\u0000b', seats: ['A-1-1'] }, 'customer', /none a control character/],
    [{ type: 'hold', key: key(), customer: 'a\ud800', seats: ['A-1-1'] }, 'customer', /customer must be/],
    [{ type: 'hold', key: key(), customer: 'x'.repeat(257), seats: ['A-1-1'] }, 'customer', /1-256 characters/],
    [{ type: 'steal', key: key(), customer: 'ann' } as unknown as ShardCommand, 'type', /unknown command type "steal"/],
  ];
  const before = inventory.snapshot();
  for (const [command, field, message] of cases) {
    const { result, changes } = inventory.decide(command, NOW);
    t.equal(result.type, 'invalid', JSON.stringify(command));
    if (result.type === 'invalid') {
      t.equal(result.field, field, `field of ${JSON.stringify(command)}`);
      t.match(result.message, message);
    }
    t.same(changes, []);
  }
  t.same(inventory.snapshot(), before, 'nothing changed');
  t.equal(inventory.stats().rememberedFailures, 0, 'invalid commands are not remembered');
});

t.test('hold-best: adjacent, best row first, no orphan when avoidable', async (t) => {
  const { inventory } = fixture({ sections: [{ id: 'A', rows: rows(3, 5) }] });
  // Row 1: take seats 1 and 3 → free runs [2] and [4,5].
  inventory.decide(hold('x', ['A-1-1', 'A-1-3']), NOW);
  // Two seats: row 1's run [4,5] fits exactly (no orphan) — best row wins.
  t.same(held(inventory.decide(holdBest('ann', 'A', 2), NOW).result).seats, ['A-1-4', 'A-1-5']);
  // Row 2 is empty (5 seats): 4 seats would leave seat 5 alone → row 3? also 5 free → all rows leave an orphan: fallback to row 2.
  t.same(held(inventory.decide(holdBest('bob', 'A', 4), NOW).result).seats, ['A-2-1', 'A-2-2', 'A-2-3', 'A-2-4']);
  // 3 seats: row 3 (5 free) fits with 2 left over.
  t.same(held(inventory.decide(holdBest('cy', 'A', 3), NOW).result).seats, ['A-3-1', 'A-3-2', 'A-3-3']);
  // One seat: the orphans themselves are the best choice (seat A-1-2 fits its run exactly).
  t.same(held(inventory.decide(holdBest('dee', 'A', 1), NOW).result).seats, ['A-1-2']);
});

t.test('hold-best prefers a later row to leaving an orphan, and strictOrphans refuses the orphan fallback', async (t) => {
  const { inventory } = fixture({
    sections: [
      {
        id: 'A',
        rows: [
          { id: '1', seats: 3 },
          { id: '2', seats: 4 },
        ],
      },
    ],
  });
  // Row 1 has 3 seats: 2 would leave one. Row 2 (4 seats) takes 2 leaving 2.
  t.same(held(inventory.decide(holdBest('ann', 'A', 2), NOW).result).seats, ['A-2-1', 'A-2-2']);
  // Now row 1: 3 free, row 2: 2 free (exact) → row 1 would orphan, row 2 fits exactly.
  t.same(held(inventory.decide(holdBest('bob', 'A', 2), NOW).result).seats, ['A-2-3', 'A-2-4']);
  // Only row 1 is left: 2 seats must leave an orphan.
  const strict = inventory.decide(holdBest('cy', 'A', 2, key(), true), NOW);
  t.same(strict.result.type, 'unavailable');
  t.match((strict.result as { message: string }).message, /without leaving a single seat/);
  t.same(held(inventory.decide(holdBest('cy', 'A', 2), NOW).result).seats, ['A-1-1', 'A-1-2'], 'fallback with an orphan');
  const none = inventory.decide(holdBest('dee', 'A', 2), NOW);
  t.same(none.result, {
    ok: false,
    type: 'unavailable',
    seats: [],
    message: 'no 2 adjacent available seats in one row of section A in shard 0',
  });
  t.match(inventory.decide(holdBest('dee', 'A', 5), NOW).result, { type: 'invalid', field: 'quantity', message: /longest row has 4/ });
});

t.test('hold-pool: quantity of places', async (t) => {
  const { inventory } = fixture({ pools: [{ id: 'GA', capacity: 5 }] });
  const first = inventory.decide(holdPool('ann', 'GA', 3), NOW);
  t.same(held(first.result), {
    holdId: 'hold-1',
    customer: 'ann',
    seats: [],
    pool: 'GA',
    quantity: 3,
    createdAt: NOW,
    expiresAt: NOW + TTL,
  });
  t.same(first.changes[1], { type: 'pool', pool: 'GA', held: 3, sold: 0, fromVersion: 0, toVersion: 1 });
  t.same(inventory.decide(holdPool('bob', 'GA', 3), NOW).result, {
    ok: false,
    type: 'unavailable',
    seats: [],
    message: 'pool GA has 2 places left; 3 requested',
  });
  const confirmed = inventory.decide(confirm('ann', 'hold-1'), NOW + 1);
  t.match(confirmed.result, { ok: true, type: 'confirmed', reservation: { pool: 'GA', quantity: 3, seats: [] } });
  t.same(confirmed.changes[0], { type: 'pool', pool: 'GA', held: 0, sold: 3, fromVersion: 1, toVersion: 2 });
  t.same(inventory.counts().pools, [{ id: 'GA', total: 5, available: 2, held: 0, sold: 3 }]);
});

t.test('per-customer limit counts live holds and reservations, seats and places', async (t) => {
  const { inventory } = fixture(theatre, { settings: { customerLimit: 4 } });
  t.ok(inventory.decide(hold('ann', ['A-1-1', 'A-1-2']), NOW).result.ok);
  t.ok(inventory.decide(holdPool('ann', 'GA', 1), NOW).result.ok);
  t.same(inventory.decide(holdBest('ann', 'A', 2), NOW).result, {
    ok: false,
    type: 'limit-exceeded',
    limit: 4,
    current: 3,
    requested: 2,
    message: 'customer holds or has reserved 3 of at most 4; 2 more would exceed the limit',
  });
  t.ok(inventory.decide(confirm('ann', 'hold-1'), NOW).result.ok, 'confirming keeps the count');
  t.ok(inventory.decide(reserve('ann', 'B-1-1'), NOW).result.ok, 'the fourth');
  t.match(inventory.decide(reserve('ann', 'B-1-2'), NOW).result, { type: 'limit-exceeded', current: 4, requested: 1 });
  t.ok(inventory.decide(release('ann', 'hold-2'), NOW).result.ok, 'releasing frees the count');
  t.ok(inventory.decide(reserve('ann', 'B-1-2'), NOW).result.ok);
  t.match(
    inventory.decide(holdBest('bob', 'A', 5), NOW).result,
    { type: 'limit-exceeded', limit: 4, current: 0, requested: 5 },
    'more than the limit in one request exceeds the limit',
  );
});

t.test('confirm: a live hold of this customer becomes a reservation', async (t) => {
  const { inventory } = fixture(theatre);
  const hold1 = held(inventory.decide(hold('ann', ['A-2-1', 'A-2-2']), NOW).result);
  t.same(inventory.decide(confirm('bob', hold1.holdId), NOW).result, {
    ok: false,
    type: 'hold-not-found',
    holdId: 'hold-1',
    message: 'no hold hold-1 of this customer',
  });
  t.match(inventory.decide(confirm('ann', 'hold-99'), NOW).result, { type: 'hold-not-found', holdId: 'hold-99' });
  const { result, changes } = inventory.decide(confirm('ann', hold1.holdId), NOW + 5);
  t.same(result, {
    ok: true,
    type: 'confirmed',
    reservation: {
      reservationId: 'res-1',
      holdId: 'hold-1',
      customer: 'ann',
      seats: ['A-2-1', 'A-2-2'],
      quantity: 2,
      confirmedAt: NOW + 5,
    },
  });
  t.same(states(changes), ['A-2-1:sold:1->2', 'A-2-2:sold:1->2']);
  t.same(
    changes.map((c) => c.type),
    ['seat', 'seat', 'reservation-created', 'idempotency'],
  );
  t.same(inventory.decide(confirm('ann', hold1.holdId), NOW + 6).result, {
    ok: false,
    type: 'hold-confirmed',
    holdId: 'hold-1',
    reservationId: 'res-1',
    message: 'hold hold-1 was already confirmed as reservation res-1',
  });
  t.match(inventory.decide(release('ann', hold1.holdId), NOW + 6).result, { type: 'hold-confirmed' }, 'a sold hold cannot be released');
  t.match(inventory.decide(confirm('bob', hold1.holdId), NOW + 6).result, { type: 'hold-not-found' }, 'nor seen by others');
  t.match(inventory.decide(hold('bob', ['A-2-1']), NOW).result, { type: 'unavailable', seats: ['A-2-1'] });
  t.same(inventory.counts().sections[0], { id: 'A', total: 30, available: 28, held: 0, sold: 2 });
});

t.test('release: seats return, the hold is over', async (t) => {
  const { inventory } = fixture(theatre);
  const view = held(inventory.decide(hold('ann', ['A-3-5']), NOW).result);
  t.match(inventory.decide(release('bob', view.holdId), NOW).result, { type: 'hold-not-found' });
  const { result, changes } = inventory.decide(release('ann', view.holdId), NOW);
  t.same(result, { ok: true, type: 'released', holdId: 'hold-1' });
  t.same(changes.slice(0, 2), [
    { type: 'seat', seat: 'A-3-5', state: 'available', holdId: null, fromVersion: 1, toVersion: 2 },
    { type: 'hold-ended', holdId: 'hold-1', customer: 'ann', quantity: 1, reason: 'released' },
  ]);
  t.same(inventory.decide(release('ann', view.holdId), NOW).result, {
    ok: false,
    type: 'hold-expired',
    holdId: 'hold-1',
    message: 'hold hold-1 was released',
  });
  t.match(inventory.decide(confirm('ann', view.holdId), NOW).result, { type: 'hold-expired' });
  t.ok(inventory.decide(hold('bob', ['A-3-5']), NOW).result.ok, 'the seat is free again');
});

t.test('reserve: one click, one winner (hot seat)', async (t) => {
  const { inventory } = fixture(theatre);
  const results = Array.from({ length: 1000 }, (_, i) => inventory.decide(reserve(`c${i}`, 'A-1-7'), NOW + i));
  const winners = results.filter((d) => d.result.ok);
  t.equal(winners.length, 1);
  t.same(winners[0]!.result, {
    ok: true,
    type: 'confirmed',
    reservation: { reservationId: 'res-1', holdId: 'hold-1', customer: 'c0', seats: ['A-1-7'], quantity: 1, confirmedAt: NOW },
  });
  t.same(
    winners[0]!.changes.map((c) => c.type),
    ['hold-created', 'seat', 'reservation-created', 'idempotency'],
  );
  t.same(states(winners[0]!.changes), ['A-1-7:sold:0->1'], 'one versioned write, straight to sold');
  t.ok(results.slice(1).every((d) => d.result.type === 'unavailable' && d.changes.length === 0));
  t.match(inventory.decide(confirm('c0', 'hold-1'), NOW).result, { type: 'hold-confirmed', reservationId: 'res-1' });
});

t.test('a refusal names each sold seat with its buyer, aligned; held seats are taken but not sold', async (t) => {
  const { inventory } = fixture(theatre);
  const annReserves = reserve('ann', 'A-1-1');
  inventory.decide(annReserves, NOW);
  const bobs = held(inventory.decide(hold('bob', ['A-1-3', 'A-1-4']), NOW).result);
  inventory.decide(confirm('bob', bobs.holdId), NOW);
  inventory.decide(hold('cy', ['A-1-5']), NOW);
  t.same(inventory.decide(hold('dee', ['A-1-4', 'A-1-2', 'A-1-5', 'A-1-1']), NOW).result, {
    ok: false,
    type: 'unavailable',
    seats: ['A-1-4', 'A-1-5', 'A-1-1'],
    sold: ['A-1-4', 'A-1-1'],
    soldTo: ['bob', 'ann'],
    message: 'seats A-1-4, A-1-5, A-1-1 are not available',
  });
  t.same(inventory.decide(reserve('dee', 'A-1-3'), NOW).result, {
    ok: false,
    type: 'unavailable',
    seats: ['A-1-3'],
    sold: ['A-1-3'],
    soldTo: ['bob'],
    message: 'seat A-1-3 is not available',
  });
  t.same(inventory.decide(annReserves, NOW).result.type, 'confirmed', "the buyer's own key still replays its success");
  t.same(inventory.decide(reserve('ann', 'A-1-3'), NOW).result, {
    ok: false,
    type: 'unavailable',
    seats: ['A-1-3'],
    sold: ['A-1-3'],
    soldTo: ['bob'],
    message: 'seat A-1-3 is not available',
  });
  t.same(inventory.decide(reserve('dee', 'A-1-5'), NOW).result, {
    ok: false,
    type: 'unavailable',
    seats: ['A-1-5'],
    message: 'seat A-1-5 is not available',
  });
  const snapshot = inventory.snapshot();
  t.same(
    snapshot.seats.filter((s) => s.state !== 'available').map((s) => [s.id, s.state, s.buyer ?? null]),
    [
      ['A-1-1', 'sold', 'ann'],
      ['A-1-3', 'sold', 'bob'],
      ['A-1-4', 'sold', 'bob'],
      ['A-1-5', 'held', null],
    ],
    'the snapshot names the buyer of each sold seat',
  );
});

t.test('expiry: a pure rule of time', async (t) => {
  const { inventory } = fixture(theatre);
  t.equal(inventory.nextExpiryAt(), Infinity);
  inventory.decide(hold('ann', ['A-1-1', 'A-1-2']), NOW);
  inventory.decide(holdPool('bob', 'GA', 2), NOW + 10);
  inventory.decide(hold('cy', ['B-1-1']), NOW + 20);
  inventory.decide(release('cy', 'hold-3'), NOW + 30);
  t.equal(inventory.nextExpiryAt(), NOW + TTL);
  t.same(inventory.expireDue(NOW + TTL - 1), [], 'nothing before its time');

  // At expiresAt the hold is over: confirm answers hold-expired even before the sweep.
  t.match(inventory.decide(confirm('ann', 'hold-1'), NOW + TTL).result, { type: 'hold-expired', message: /expired at/ });
  t.match(inventory.decide(hold('dee', ['A-1-1']), NOW + TTL).result, { type: 'unavailable' }, 'until swept its seats stay held');

  const changes = inventory.expireDue(NOW + TTL + 10);
  t.same(changes, [
    { type: 'seat', seat: 'A-1-1', state: 'available', holdId: null, fromVersion: 1, toVersion: 2 },
    { type: 'seat', seat: 'A-1-2', state: 'available', holdId: null, fromVersion: 1, toVersion: 2 },
    { type: 'hold-ended', holdId: 'hold-1', customer: 'ann', quantity: 2, reason: 'expired' },
    { type: 'pool', pool: 'GA', held: 0, sold: 0, fromVersion: 1, toVersion: 2 },
    { type: 'hold-ended', holdId: 'hold-2', customer: 'bob', quantity: 2, reason: 'expired' },
  ]);
  t.equal(inventory.nextExpiryAt(), Infinity, 'the released hold left no timer behind');
  t.match(inventory.decide(confirm('ann', 'hold-1'), NOW + TTL + 11).result, { type: 'hold-expired', message: 'hold hold-1 was expired' });
  t.same(inventory.counts().overall, { total: 47, available: 47, held: 0, sold: 0 });
});

t.test('expireAll: the sale closed, every live hold ends now; sales stand', async (t) => {
  const { inventory } = fixture(theatre);
  inventory.decide(hold('ann', ['A-1-1']), NOW);
  inventory.decide(holdPool('bob', 'GA', 2), NOW + 10);
  inventory.decide(reserve('cy', 'A-1-2'), NOW + 20);
  const changes = inventory.expireAll(NOW + 30);
  t.same(changes, [
    { type: 'seat', seat: 'A-1-1', state: 'available', holdId: null, fromVersion: 1, toVersion: 2 },
    { type: 'hold-ended', holdId: 'hold-1', customer: 'ann', quantity: 1, reason: 'expired' },
    { type: 'pool', pool: 'GA', held: 0, sold: 0, fromVersion: 1, toVersion: 2 },
    { type: 'hold-ended', holdId: 'hold-2', customer: 'bob', quantity: 2, reason: 'expired' },
  ]);
  t.same(inventory.counts().overall, { total: 47, available: 46, held: 0, sold: 1 });
  t.equal(inventory.nextExpiryAt(), Infinity, 'no timer left behind');
  t.match(inventory.decide(confirm('ann', 'hold-1'), NOW + 40).result, { type: 'hold-expired' });
  t.same(inventory.expireAll(NOW + 50), [], 'nothing left to end');
});

t.test('idempotency: replays, mismatches, failures remembered in memory only, TTL', async (t) => {
  const { inventory } = fixture(theatre, { settings: { idempotencyTtlMs: 10_000 } });
  const command = hold('ann', ['A-1-1']) as HoldSeatsCommand;
  const first = inventory.decide(command, NOW);
  const again = inventory.decide({ ...command, seats: ['A-1-1'] }, NOW + 1);
  t.equal(again.result, first.result, 'the very first result object');
  t.same(again.changes, []);
  t.same(inventory.decide({ ...command, seats: ['A-1-2'] }, NOW + 2).result, {
    ok: false,
    type: 'idempotency-mismatch',
    message: `idempotency key "${command.key}" was already used for a different command (A-1-1)`,
  });
  t.ok(inventory.decide({ ...command, customer: 'bob', seats: ['A-1-2'] }, NOW + 2).result.ok, 'keys are per customer');

  const loser = reserve('cy', 'A-1-1');
  const lost = inventory.decide(loser, NOW + 3);
  t.equal(lost.result.type, 'unavailable');
  inventory.decide(release('ann', 'hold-1'), NOW + 4);
  t.equal(inventory.decide(loser, NOW + 5).result, lost.result, 'a failure is replayed too (never turned into a success)');
  t.same(inventory.stats(), { seats: 42, holds: 1, endedHolds: 1, customers: 1, rememberedResults: 3, rememberedFailures: 1 });

  // After the TTL the key is forgotten and the command is decided afresh.
  const fresh = inventory.decide(loser, NOW + 3 + 10_000);
  t.equal(fresh.result.type, 'confirmed');
  t.not(fresh.result, lost.result);
  const replayedLate = inventory.decide(command, NOW + 10_000);
  t.equal(replayedLate.result.type, 'unavailable', 'the first hold key expired too: decided afresh');
});

t.test('failure memory is bounded', async (t) => {
  const { inventory } = fixture(theatre, { settings: { maxRememberedFailures: 3 } });
  inventory.decide(reserve('ann', 'A-1-1'), NOW);
  const losers = Array.from({ length: 5 }, (_, i) => reserve(`c${i}`, 'A-1-1'));
  const first = losers.map((command) => inventory.decide(command, NOW).result);
  t.equal(inventory.stats().rememberedFailures, 3);
  // The newest is answered from memory (the very result first given); the oldest was forgotten and
  // is decided again (still unavailable, a new result).
  t.equal(inventory.decide(losers[4]!, NOW).result, first[4], 'the newest failure: remembered');
  const again = inventory.decide(losers[0]!, NOW).result;
  t.not(again, first[0], 'the oldest failure: forgotten, decided again');
  t.equal(again.type, 'unavailable');
  t.equal(inventory.stats().rememberedFailures, 3);
});

t.test('abort undoes an unpersisted hold exactly', async (t) => {
  const { inventory } = fixture(theatre);
  const before = inventory.snapshot();
  const command = hold('ann', ['A-1-1', 'A-1-2']);
  const view = held(inventory.decide(command, NOW).result);
  t.ok(inventory.abort(view.holdId));
  t.same(inventory.snapshot(), before, 'seats, versions, tallies and keys as before');
  t.equal(inventory.decide(command, NOW).result.type, 'held', 'the key was forgotten: a retry is decided afresh');

  const reserved = inventory.decide(reserve('bob', 'B-1-1'), NOW).result;
  t.equal(reserved.type, 'confirmed');
  if (reserved.type === 'confirmed') t.ok(inventory.abort(reserved.reservation.holdId), 'a one-shot reserve can be aborted');
  t.match(inventory.seatStates('B')![0], { seat: 'B-1-1', state: 'available', version: 0 });

  const ga = () => inventory.snapshot().pools.find((p) => p.id === 'GA')!;
  const poolBefore = ga();
  const a = held(inventory.decide(holdPool('cy', 'GA', 1), NOW).result);
  held(inventory.decide(holdPool('dee', 'GA', 1), NOW).result);
  t.notOk(inventory.abort(a.holdId), 'not exact: a later decision changed the pool since');
  t.notOk(inventory.abort(a.holdId, poolBefore.version + 1), 'nor when the pool moved past the version the caller writes');
  t.ok(inventory.abort(a.holdId, poolBefore.version + 2), 'undone when the caller writes the pool at its current version');
  t.match(
    ga(),
    { held: poolBefore.held + 1, sold: poolBefore.sold, version: poolBefore.version + 2 },
    "cy's place returned, the version stays",
  );
  t.equal(inventory.holdView(a.holdId), undefined, 'the hold is gone');
  t.equal(inventory.decide(holdPool('cy', 'GA', 1), NOW).result.type, 'held', "cy's key was forgotten: a retry is decided afresh");
  // A decision beyond the caller's batch moved the pool: undone all the same when the caller takes
  // the places out of what that decision recorded.
  const poolMid = ga();
  const fay = held(inventory.decide(holdPool('fay', 'GA', 2), NOW).result);
  held(inventory.decide(holdPool('gus', 'GA', 1), NOW).result);
  t.notOk(inventory.abort(fay.holdId, poolMid.version + 1), 'not when the later decision is left as recorded');
  t.ok(inventory.abort(fay.holdId, poolMid.version + 1, true), 'undone when the caller adjusts the later decision');
  t.match(ga(), { held: poolMid.held + 1, sold: poolMid.sold, version: poolMid.version + 2 }, "fay's places returned, gus's kept");
  t.notOk(inventory.abort('hold-nope'));
  const confirmedHold = held(inventory.decide(hold('eve', ['A-3-1']), NOW).result);
  inventory.decide(confirm('eve', confirmedHold.holdId), NOW);
  t.notOk(inventory.abort(confirmedHold.holdId), 'a confirmed hold is not abortable');
});

t.test('read models', async (t) => {
  const { inventory } = fixture(theatre, { shards: 2 });
  inventory.decide(hold('ann', ['A-1-1']), NOW);
  inventory.decide(reserve('ann', 'A-1-2'), NOW);
  t.same(inventory.seatStates('A')!.slice(0, 3), [
    { seat: 'A-1-1', state: 'held', version: 1 },
    { seat: 'A-1-2', state: 'sold', version: 1 },
    { seat: 'A-1-3', state: 'available', version: 0 },
  ]);
  t.equal(inventory.seatStates('GA'), undefined);
  const { overall, sections } = inventory.counts();
  t.same(overall, { total: sections[0]!.total, available: sections[0]!.total - 2, held: 1, sold: 1 }, 'shard 0 of 2 owns only section A');
  t.same(inventory.holdView('hold-1')?.seats, ['A-1-1']);
  t.equal(inventory.holdView('hold-2'), undefined, 'a reserve leaves no live hold');
});

t.test('more seats than one command may take: over the customer limit is the limit exceeded, else invalid', async (t) => {
  const { inventory } = fixture(theatre, { settings: { customerLimit: 10, maxSeatsPerRequest: 3 } });
  t.match(
    inventory.decide(hold('ann', ['A-1-1', 'A-1-2', 'A-1-3', 'A-1-4']), NOW).result,
    { type: 'invalid', field: 'seats', message: /4 seats requested; at most 3 per request/ },
    'within the limit but above the per-request maximum',
  );
  t.match(inventory.decide(holdPool('ann', 'GA', 4), NOW).result, { type: 'invalid', field: 'quantity', message: /4 places requested/ });
  const { inventory: small } = fixture(theatre, { settings: { customerLimit: 2 } });
  t.ok(small.decide(hold('ann', ['A-1-1']), NOW).result.ok);
  t.same(
    small.decide(hold('ann', ['A-2-1', 'A-2-2', 'A-2-3']), NOW).result,
    {
      ok: false,
      type: 'limit-exceeded',
      limit: 2,
      current: 1,
      requested: 3,
      message: 'customer holds or has reserved 1 of at most 2; 3 more would exceed the limit',
    },
    'the same answer as a request that fits but comes on top of what the customer has',
  );
});

t.test('a refusal is replayed for its key, unless the command asks for a new decision (redecideRefusal)', async (t) => {
  const { inventory } = fixture(theatre);
  const bob = (redecideRefusal?: boolean): ShardCommand => ({
    type: 'reserve',
    key: 'bob-1',
    customer: 'bob',
    seat: 'A-1-1',
    ...(redecideRefusal === undefined ? {} : { redecideRefusal }),
  });
  const annHold = held(inventory.decide(hold('ann', ['A-1-1']), NOW).result);
  t.match(inventory.decide(bob(), NOW).result, { type: 'unavailable' });
  t.ok(inventory.decide(release('ann', annHold.holdId), NOW + 1).result.ok, 'the seat is free again');
  t.match(inventory.decide(bob(), NOW + 2).result, { type: 'unavailable' }, 'by default the first answer is replayed');
  t.match(inventory.decide(bob(false), NOW + 2).result, { type: 'unavailable' });
  const fresh = inventory.decide(bob(true), NOW + 3);
  t.match(fresh.result, { type: 'confirmed' }, 'asked again after the refusal: decided afresh');
  t.same(inventory.decide(bob(true), NOW + 4), { result: fresh.result, changes: [], replayed: true }, 'a success is always replayed');
  t.match(inventory.stats(), { rememberedResults: 3, rememberedFailures: 0 }, 'the refusal is forgotten, not kept beside the success');
});

t.test('replayOnly: a remembered result is replayed; nothing remembered decides and remembers nothing', async (t) => {
  const { inventory } = fixture(theatre);
  const best = (replayOnly?: boolean): ShardCommand => ({
    type: 'hold-best',
    key: 'ann-1',
    customer: 'ann',
    section: 'A',
    quantity: 2,
    ...(replayOnly === undefined ? {} : { replayOnly }),
  });
  const before = inventory.counts().overall;
  const probe = inventory.decide(best(true), NOW);
  t.same(probe, { result: { ok: false, type: 'unavailable', seats: [], message: 'nothing decided under key ann-1' }, changes: [] });
  t.same(inventory.counts().overall, before, 'no seat held');
  t.match(inventory.stats(), { rememberedResults: 0, rememberedFailures: 0 }, 'and nothing remembered');
  const first = inventory.decide(best(), NOW + 1);
  t.match(first.result, { type: 'held' }, 'the real command is decided afresh');
  t.same(inventory.decide(best(true), NOW + 2), { result: first.result, changes: [], replayed: true }, 'then a probe replays it');
});

t.test(
  'a customer id of up to 256 characters, any but control characters, is decided for (what the ingress accepts as a subject)',
  async (t) => {
    const { inventory } = fixture(theatre);
    t.match(inventory.decide(hold('x'.repeat(256), ['A-1-5']), NOW).result, { type: 'held' });
    t.match(inventory.decide(hold('zoë 🎟️', ['A-1-6']), NOW).result, { type: 'held' });
  },
);

t.test('a key of any other characters, a surrogate pair included, is decided for', async (t) => {
  const { inventory } = fixture(theatre);
  t.match(inventory.decide(hold('ann', ['A-1-5'], 'clé 🎟️ \t'), NOW).result, { type: 'held' });
  t.match(inventory.decide(hold('bob', ['A-1-6'], 'x'.repeat(200)), NOW).result, { type: 'held' });
});

t.test('a hold naming more seats than the customer limit is refused by its length, before its seats are read', async (t) => {
  // Only a client talking to the shard directly sends such a list (the ingress caps it): resolving
  // tens of thousands of seats, and comparing them for duplicates, kept the shard from deciding.
  const { inventory } = fixture(theatre, { settings: { customerLimit: 4 } });
  t.ok(inventory.decide(hold('ann', ['A-1-1']), NOW).result.ok);
  const before = inventory.snapshot();
  const garbage = Array.from({ length: 40_000 }, (_, i) => (i % 3 === 0 ? 'A-1-2' : i % 3 === 1 ? `Z-9-${i}` : 'A-1-1'));
  const command = hold('ann', garbage);
  const refused = inventory.decide(command, NOW);
  t.same(
    refused,
    {
      result: {
        ok: false,
        type: 'limit-exceeded',
        limit: 4,
        current: 1,
        requested: 40_000,
        message: 'customer holds or has reserved 1 of at most 4; 40000 more would exceed the limit',
      },
      changes: [],
    },
    'unknown, duplicate and taken seats alike: the answer a list of valid seats over the limit gets',
  );
  t.same(inventory.snapshot(), before, 'nothing changed');
  const remembered = inventory.stats().rememberedFailures;
  t.same(inventory.decide(command, NOW + 1), refused, 'decided again the same way: not remembered, its seat list is far too long');
  t.equal(inventory.stats().rememberedFailures, remembered, 'the failure memory holds no such list');
  const short = hold('ann', garbage.slice(0, 5));
  const first = inventory.decide(short, NOW + 2);
  t.same(inventory.decide(short, NOW + 3), { ...first, replayed: true }, 'a refusal of a list like the ingress sends is remembered');
  t.match(inventory.decide(hold('bob', ['A-1-2', 'A-1-3', 'A-1-4', 'A-1-5', 'A-1-6']), NOW).result, {
    type: 'limit-exceeded',
    current: 0,
    requested: 5,
  });
  // Within the limit, every seat is still checked.
  t.match(inventory.decide(hold('bob', ['A-1-2', 'Z-9-9']), NOW).result, { type: 'invalid', field: 'seats[1]' });
});

t.test('abort undoes a one-shot reserve whose ended entry was forgotten already', async (t) => {
  // With a small maxEndedHolds (or the key's TTL over), the reserve's ended entry is gone before
  // the batch's commit is refused: its seat, sold under its hold id to its buyer, is the record.
  const { inventory } = fixture(theatre, { settings: { maxEndedHolds: 1 } });
  const before = inventory.snapshot();
  const reserved = inventory.decide(reserve('ann', 'A-1-1'), NOW).result;
  if (reserved.type !== 'confirmed') throw new Error(JSON.stringify(reserved));
  const other = held(inventory.decide(hold('bob', ['A-2-1']), NOW).result);
  t.ok(inventory.decide(release('bob', other.holdId), NOW).result.ok);
  t.equal(inventory.stats().endedHolds, 1, "bob's release pushed ann's reserve out of the ended holds");
  t.ok(inventory.abort(reserved.reservation.holdId), 'undone all the same');
  t.match(inventory.seatStates('A')![0], { seat: 'A-1-1', state: 'available', version: 0 });
  t.same(inventory.snapshot().reservedByCustomer, before.reservedByCustomer, "ann's reservation count is back");
  t.equal(inventory.stats().customers, 0, 'no tally left');
  t.equal(inventory.decide(reserve('ann', 'A-1-1'), NOW).result.type, 'confirmed', 'the seat is for sale again');
});

t.test(
  'applyRules: new holds by the new rules, holds made keep theirs, a customer above a lowered limit keeps what they have',
  async (t) => {
    const { inventory } = fixture(theatre, { settings: { customerLimit: 3, holdTtlMs: TTL } });
    const first = held(inventory.decide(hold('ann', ['A-1-1', 'A-1-2', 'A-1-3']), NOW).result);
    inventory.applyRules({ customerLimit: 2, holdTtlMs: TTL / 2 });
    t.match(inventory.settings, { customerLimit: 2, holdTtlMs: TTL / 2, maxSeatsPerRequest: 50 }, 'the others kept');
    t.equal(inventory.holdView(first.holdId)?.expiresAt, NOW + TTL, 'a hold is never shortened');
    t.match(inventory.decide(hold('ann', ['A-2-1']), NOW).result, { type: 'limit-exceeded', limit: 2, current: 3, requested: 1 });
    t.ok(inventory.decide(confirm('ann', first.holdId), NOW).result.ok, 'what she has she may still confirm');
    const bob = held(inventory.decide(hold('bob', ['A-2-1']), NOW).result);
    t.equal(bob.expiresAt, NOW + TTL / 2, 'a new hold lives by the new TTL');
    t.throws(() => inventory.applyRules({ customerLimit: 0, holdTtlMs: TTL }), { code: 'shard_settings_invalid' });
    t.match(inventory.settings, { customerLimit: 2, holdTtlMs: TTL / 2 }, 'rules out of bounds change nothing');
  },
);
