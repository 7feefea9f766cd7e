import t from 'tap';
import type { HoldView, ShardChange } from '../../../src/domain/commands.js';
import { emptyBatchWrite, foldChanges, overLimit, withoutHeldPlaces } from '../../../src/engine/batch-write.js';

const hold = (holdId: string, customer: string, seats: string[]): HoldView => ({
  holdId,
  customer,
  seats,
  quantity: seats.length,
  createdAt: 1,
  expiresAt: 2,
});

t.test('a seat changed twice in one batch keeps the first fromVersion and the last state', async (t) => {
  const batch = emptyBatchWrite();
  const changes: ShardChange[] = [
    { type: 'hold-created', hold: hold('h1', 'alice', ['A-1-1']) },
    { type: 'seat', seat: 'A-1-1', state: 'held', holdId: 'h1', fromVersion: 3, toVersion: 4 },
  ];
  foldChanges(batch, changes, 100);
  foldChanges(
    batch,
    [
      { type: 'seat', seat: 'A-1-1', state: 'sold', holdId: 'h1', fromVersion: 4, toVersion: 5 },
      {
        type: 'reservation-created',
        reservation: { reservationId: 'r1', holdId: 'h1', customer: 'alice', seats: ['A-1-1'], quantity: 1, confirmedAt: 100 },
      },
    ],
    100,
  );
  t.same([...batch.seats.values()], [{ seat: 'A-1-1', state: 'sold', holdId: 'h1', fromVersion: 3, toVersion: 5 }]);
  const write = batch.holds.get('h1');
  t.equal(write?.created?.holdId, 'h1', 'created in this batch');
  t.equal(write?.reservationId, 'r1', 'and confirmed in it');
  t.equal(batch.reservations.length, 1);
  t.same(Object.fromEntries(batch.usage), { alice: 1 }, 'held then sold: one seat of usage');
});

t.test('releases and expiries give usage back; pools fold like seats', async (t) => {
  const batch = emptyBatchWrite();
  foldChanges(
    batch,
    [
      { type: 'hold-ended', holdId: 'h0', customer: 'bob', quantity: 2, reason: 'expired' },
      { type: 'pool', pool: 'GA', held: 3, sold: 0, fromVersion: 7, toVersion: 8 },
      { type: 'hold-created', hold: { ...hold('h2', 'carol', []), pool: 'GA', quantity: 3 } },
      { type: 'pool', pool: 'GA', held: 0, sold: 3, fromVersion: 8, toVersion: 9 },
    ],
    50,
  );
  t.same(Object.fromEntries(batch.usage), { bob: -2, carol: 3 });
  t.same(batch.holds.get('h0')?.ended, { reason: 'expired', at: 50 });
  t.same([...batch.pools.values()], [{ pool: 'GA', held: 0, sold: 3, fromVersion: 7, toVersion: 9 }]);
});

t.test("withoutHeldPlaces takes an undone hold's places out of later recorded pool counters, and nothing else", async (t) => {
  const changes: ShardChange[] = [
    { type: 'pool', pool: 'GA', held: 5, sold: 1, fromVersion: 7, toVersion: 8 },
    { type: 'pool', pool: 'VIP', held: 2, sold: 0, fromVersion: 3, toVersion: 4 },
    { type: 'hold-created', hold: { ...hold('h3', 'dan', []), pool: 'GA', quantity: 1 } },
  ];
  t.same(withoutHeldPlaces(changes, 'GA', 2), [
    { type: 'pool', pool: 'GA', held: 3, sold: 1, fromVersion: 7, toVersion: 8 },
    changes[1],
    changes[2],
  ]);
  t.match(changes[0], { held: 5 }, 'the recorded changes themselves are left as they were');
  const seatsOnly: ShardChange[] = [{ type: 'hold-created', hold: hold('h4', 'eve', ['A-1-1']) }];
  t.equal(withoutHeldPlaces(seatsOnly, 'GA', 2), seatsOnly, 'changes without that pool come back as they are');
});

t.test('overLimit refuses, in decision order, only the holds that do not fit the usage the commit reported', async (t) => {
  const created = (id: string, customer: string, n: number) => ({
    id,
    changes: [
      {
        type: 'hold-created',
        hold: hold(
          id,
          customer,
          Array.from({ length: n }, (_, i) => `${id}-${i}`),
        ),
      },
    ] as ShardChange[],
  });
  const ended = (id: string, customer: string, quantity: number) => ({
    id,
    changes: [{ type: 'hold-ended', holdId: id, customer, quantity, reason: 'released' }] as ShardChange[],
  });
  const ids = (entries: readonly { id: string }[]) => entries.map((e) => e.id);

  // Limit 4; C uses 2 on another shard. Two holds of 2 in one batch: the first fits, the second not.
  const batch = [created('c1', 'C', 2), created('d1', 'D', 3), created('c2', 'C', 2)];
  const one = overLimit(batch, new Map([['C', 2]]), 4);
  t.same(
    one.refusedEntries.map((r) => r.entry.id),
    ['c2'],
  );
  t.same(ids(one.rest), ['c1', 'd1'], "the first fits, and other customers' holds are untouched");
  t.equal(one.usageAfter.get('C'), 4, 'usage once the kept hold commits');

  // What the batch gives back counts: a release of C's makes room for the second hold.
  const withRelease = overLimit([ended('r', 'C', 2), ...batch], new Map([['C', 4]]), 4);
  t.same(
    withRelease.refusedEntries.map((r) => r.entry.id),
    ['c2'],
  );
  t.same(ids(withRelease.rest), ['r', 'c1', 'd1']);

  // Usage grew again since the refusal, so that everything would fit by the reported figure:
  // the newest hold goes all the same, and the commit loop progresses.
  const stale = overLimit(batch, new Map([['C', 0]]), 4);
  t.same(
    stale.refusedEntries.map((r) => r.entry.id),
    ['c2'],
  );
  t.same(ids(stale.rest), ['c1', 'd1']);
  t.equal(stale.usageAfter.get('C'), 2);

  // Two refused customers, each keeping what fits, refusals in decision order.
  const two = overLimit(
    [created('c1', 'C', 3), created('d1', 'D', 1), created('d2', 'D', 1), created('c2', 'C', 1)],
    new Map([
      ['C', 1],
      ['D', 3],
    ]),
    4,
  );
  t.same(
    two.refusedEntries.map((r) => r.entry.id),
    ['d2', 'c2'],
  );
  t.same(ids(two.rest), ['c1', 'd1']);
});
