import t from 'tap';
import { SoldSeats } from '../../../src/ingress/sold-seats.js';

t.test('remembers sold seats per event until their TTL passes', async (t) => {
  let now = 1_000;
  const sold = new SoldSeats(() => now, 5_000, 100);
  t.equal(sold.sold('e1', ['A-1-1']), undefined, 'nothing known at first');
  sold.remember('e1', ['A-1-1', 'A-1-2']);
  t.same(sold.sold('e1', ['A-1-1', 'A-1-3', 'A-1-2']), ['A-1-1', 'A-1-2']);
  t.equal(sold.sold('e2', ['A-1-1']), undefined, 'another event is another seat');
  now += 4_999;
  t.same(sold.sold('e1', ['A-1-1']), ['A-1-1'], 'still known just before the TTL');
  sold.remember('e1', ['A-1-2']); // renewed by a fresh refusal
  now += 1;
  t.equal(sold.sold('e1', ['A-1-1']), undefined, 'forgotten at the TTL');
  t.same(sold.sold('e1', ['A-1-2']), ['A-1-2'], 'the renewed seat is still known');
  t.equal(sold.size, 1, 'expired entries are dropped when seen');
});

t.test('holds at most its capacity, forgetting the oldest first', async (t) => {
  const sold = new SoldSeats(() => 0, 5_000, 3);
  sold.remember('e', ['s1', 's2', 's3']);
  sold.remember('e', ['s1']); // s1 is now the newest
  sold.remember('e', ['s4']);
  t.equal(sold.size, 3);
  t.same(sold.sold('e', ['s1', 's2', 's3', 's4']), ['s1', 's3', 's4'], 's2, the oldest, was forgotten');
});

t.test('the refusal of known-sold seats names only those that are sold', async (t) => {
  const sold = new SoldSeats(() => 0, 5_000, 100);
  t.equal(sold.refusal('e', ['A-1-1']), undefined, 'nothing known: ask the shard');
  sold.remember('e', ['A-1-1']);
  t.match(sold.refusal('e', ['A-1-1', 'A-1-2']), { ok: false, type: 'unavailable', seats: ['A-1-1'], sold: ['A-1-1'] });
});
