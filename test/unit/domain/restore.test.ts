import t from 'tap';
import { PersistedShard, ShardInventory, SnapshotError, StaleWriteError, type ShardSnapshot } from '../../../src/domain/index.js';
import { confirm, counterIds, fixture, hold, holdPool, release, reserve, rows } from './support/fixtures.js';

const NOW = 1_000_000;
const layout = { sections: [{ id: 'A', rows: rows(2, 5) }], pools: [{ id: 'GA', capacity: 10 }] };

/** A shard after some traffic, its changes folded into a PersistedShard as the engine commits them. */
function traffic() {
  const newId = counterIds();
  const { inventory, map, settings } = fixture(layout, { newId, settings: { holdTtlMs: 1_000 } });
  const store = new PersistedShard(map.poolsOfShard(0));
  const commit = (now: number, ...commands: Parameters<typeof inventory.decide>[0][]) => {
    for (const command of commands) store.apply(inventory.decide(command, now).changes, now);
  };
  commit(NOW, hold('ann', ['A-1-1', 'A-1-2']), holdPool('bob', 'GA', 3), reserve('cy', 'A-2-5'), hold('dee', ['A-2-1']));
  commit(NOW + 10, confirm('ann', 'hold-1'), release('dee', 'hold-4'), hold('eve', ['A-1-5']));
  return { inventory, map, settings, store, newId };
}

t.test('restore(snapshot of the folded changes) rebuilds the same shard', async (t) => {
  const { inventory, map, settings, store } = traffic();
  // Its own id generator, continuing where the original's is (5 holds, 2 reservations issued).
  const restored = ShardInventory.restore({ map, shard: 0 }, settings, store.snapshot(), NOW + 20, counterIds({ hold: 5, reservation: 2 }));
  const sort = (s: ShardSnapshot) => ({
    ...s,
    liveHolds: [...s.liveHolds].sort((a, b) => a.holdId.localeCompare(b.holdId)),
    endedHolds: [...(s.endedHolds ?? [])].sort((a, b) => a.holdId.localeCompare(b.holdId)),
    idempotency: [...s.idempotency].sort((a, b) => a.key.localeCompare(b.key)),
    reservedByCustomer: [...s.reservedByCustomer].sort((a, b) => a.customer.localeCompare(b.customer)),
  });
  t.same(sort(restored.snapshot()), sort(inventory.snapshot()));
  t.same(restored.counts(), inventory.counts());
  t.equal(restored.nextExpiryAt(), inventory.nextExpiryAt());
  // Same answers to the same next commands.
  for (const command of [confirm('ann', 'hold-1'), release('dee', 'hold-4'), hold('fay', ['A-1-3', 'A-1-4']), holdPool('cy', 'GA', 7)]) {
    t.same(restored.decide(command, NOW + 30).result, inventory.decide(command, NOW + 30).result, command.type);
  }
  // And the same expiry.
  t.same(restored.expireDue(NOW + 5_000), inventory.expireDue(NOW + 5_000));
});

t.test('the buyers of sold seats survive a snapshot round-trip; a sold seat without one is never named sold', async (t) => {
  const { inventory, map, settings, store } = traffic();
  const buyers = (s: ShardSnapshot) =>
    Object.fromEntries(s.seats.filter((seat) => seat.state === 'sold').map((seat) => [seat.id, seat.buyer]));
  t.same(buyers(store.snapshot()), { 'A-1-1': 'ann', 'A-1-2': 'ann', 'A-2-5': 'cy' }, 'the folded changes name the buyers');
  t.same(buyers(store.snapshot()), buyers(inventory.snapshot()), 'as the shard does');
  const restored = ShardInventory.restore({ map, shard: 0 }, settings, store.snapshot(), NOW + 20, counterIds({ hold: 5, reservation: 2 }));
  t.same(buyers(restored.snapshot()), buyers(store.snapshot()));
  t.match(restored.decide(hold('fay', ['A-1-2', 'A-2-5', 'A-1-3']), NOW + 30).result, {
    type: 'unavailable',
    seats: ['A-1-2', 'A-2-5'],
    sold: ['A-1-2', 'A-2-5'],
    soldTo: ['ann', 'cy'],
  });
  t.match(restored.decide(reserve('fay', 'A-2-5'), NOW + 30).result, { type: 'unavailable', sold: ['A-2-5'], soldTo: ['cy'] });

  // A snapshot that cannot say who bought a seat: the seat is still sold, but not named sold, so
  // a caller that remembers sold seats asks the shard (which replays a buyer's own success).
  const good = store.snapshot();
  const unknown: ShardSnapshot = { ...good, seats: good.seats.map((seat) => (seat.id === 'A-1-2' ? { ...seat, buyer: null } : seat)) };
  const blind = ShardInventory.restore({ map, shard: 0 }, settings, unknown, NOW + 20, counterIds({ hold: 5, reservation: 2 }));
  const refusal = blind.decide(hold('fay', ['A-1-1', 'A-1-2']), NOW + 30).result;
  t.same(refusal, {
    ok: false,
    type: 'unavailable',
    seats: ['A-1-1', 'A-1-2'],
    sold: ['A-1-1'],
    soldTo: ['ann'],
    message: 'seats A-1-1, A-1-2 are not available',
  });
  t.same(blind.decide(reserve('fay', 'A-1-2'), NOW + 30).result, {
    ok: false,
    type: 'unavailable',
    seats: ['A-1-2'],
    message: 'seat A-1-2 is not available',
  });
  t.equal(blind.counts().overall.sold, restored.counts().overall.sold, 'still sold');
});

t.test('restore keeps expired holds until expireDue, as the rule says', async (t) => {
  const { map, settings, store, newId } = traffic();
  const later = NOW + 60_000;
  const restored = ShardInventory.restore({ map, shard: 0 }, settings, store.snapshot(), later, newId);
  t.equal(restored.counts().overall.held, 4, "bob's 3 places and eve's seat stay held until swept");
  const changes = restored.expireDue(later);
  t.same(
    changes.filter((c) => c.type === 'hold-ended').map((c) => c.type === 'hold-ended' && c.holdId),
    ['hold-2', 'hold-5'],
  );
  store.apply(changes, later);
  t.equal(restored.counts().overall.held, 0);
});

t.test('restore from the engine rows of a fresh shard: seats absent = available at version 0', async (t) => {
  const { map, settings } = fixture(layout);
  const empty: ShardSnapshot = { seats: [], pools: [], liveHolds: [], reservedByCustomer: [], idempotency: [] };
  const restored = ShardInventory.restore({ map, shard: 0 }, settings, empty, NOW, counterIds());
  t.same(restored.counts().overall, { total: 20, available: 20, held: 0, sold: 0 });
});

t.test('an inconsistent snapshot is refused with a precise error', async (t) => {
  const { map, settings, store } = traffic();
  const good = store.snapshot();
  const cases: [string, ShardSnapshot, RegExp][] = [
    [
      'unknown seat',
      { ...good, seats: [...good.seats, { id: 'Z-1-1', state: 'available', holdId: null, version: 0 }] },
      /seat Z-1-1 is not a seat of this shard/,
    ],
    ['duplicate seat', { ...good, seats: [...good.seats, good.seats[0]!] }, /appears twice/],
    [
      'held seat without hold',
      { ...good, seats: [...good.seats, { id: 'A-2-2', state: 'held', holdId: null, version: 1 }] },
      /held without a hold id/,
    ],
    [
      'seat held by no live hold',
      { ...good, seats: [...good.seats, { id: 'A-2-2', state: 'held', holdId: 'hold-x', version: 1 }] },
      /3 seats are held but live holds name 2|seats are held but live holds name/,
    ],
    [
      'hold naming a free seat',
      {
        ...good,
        liveHolds: [...good.liveHolds, { holdId: 'h9', customer: 'x', seats: ['A-2-3'], quantity: 1, createdAt: 0, expiresAt: 1 }],
      },
      /names seat A-2-3, which is not held by it/,
    ],
    ['pool over capacity', { ...good, pools: [{ id: 'GA', capacity: 10, held: 3, sold: 8, version: 1 }] }, /impossible counters/],
    [
      'pool held disagrees with holds',
      { ...good, pools: [{ id: 'GA', capacity: 10, held: 2, sold: 0, version: 1 }] },
      /says 2 held but its live holds hold 3/,
    ],
    [
      'pool capacity differs from layout',
      { ...good, pools: [{ id: 'GA', capacity: 11, held: 3, sold: 0, version: 1 }] },
      /capacity 11, the layout says 10/,
    ],
    ['bad version', { ...good, seats: [{ id: 'A-2-4', state: 'available', holdId: null, version: -1 }] }, /bad version/],
  ];
  for (const [name, snapshot, message] of cases) {
    t.throws(
      () => ShardInventory.restore({ map, shard: 0 }, settings, snapshot, NOW, counterIds()),
      { name: 'SnapshotError', message },
      name,
    );
  }
  t.ok(new SnapshotError('x').code === 'snapshot_inconsistent');
});

t.test('PersistedShard applies versioned writes all or nothing', async (t) => {
  const store = new PersistedShard([{ id: 'GA', capacity: 5 }]);
  store.apply([{ type: 'seat', seat: 'A-1-1', state: 'held', holdId: 'h', fromVersion: 0, toVersion: 1 }], NOW);
  const before = store.snapshot();
  t.throws(
    () =>
      store.apply(
        [
          { type: 'seat', seat: 'A-1-2', state: 'held', holdId: 'h2', fromVersion: 0, toVersion: 1 },
          { type: 'seat', seat: 'A-1-1', state: 'held', holdId: 'h2', fromVersion: 0, toVersion: 1 },
        ],
        NOW,
      ),
    StaleWriteError,
  );
  t.same(store.snapshot(), before, 'the whole transaction rolled back');
  t.throws(() => store.apply([{ type: 'hold-ended', holdId: 'nope', customer: 'x', quantity: 1, reason: 'expired' }], NOW), /not live/);
});
