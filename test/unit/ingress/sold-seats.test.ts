import t from 'tap';
import type { ShardResult } from '../../../src/domain/commands.js';
import { SoldSeats } from '../../../src/ingress/sold-seats.js';

t.test('remembers sold seats per event until their TTL passes', async (t) => {
  let now = 1_000;
  const sold = new SoldSeats(() => now, 5_000, 100);
  t.equal(sold.sold('e1', ['A-1-1']), undefined, 'nothing known at first');
  sold.remember('e1', ['A-1-1', 'A-1-2'], 'ann');
  t.same(sold.sold('e1', ['A-1-1', 'A-1-3', 'A-1-2']), ['A-1-1', 'A-1-2']);
  t.equal(sold.sold('e2', ['A-1-1']), undefined, 'another event is another seat');
  now += 4_999;
  t.same(sold.sold('e1', ['A-1-1']), ['A-1-1'], 'still known just before the TTL');
  sold.remember('e1', ['A-1-2'], 'ann'); // renewed by a fresh refusal
  now += 1;
  t.equal(sold.sold('e1', ['A-1-1']), undefined, 'forgotten at the TTL');
  t.equal(sold.refusal('e1', ['A-1-1'], 'bob'), undefined, 'and no longer refused');
  t.same(sold.sold('e1', ['A-1-2']), ['A-1-2'], 'the renewed seat is still known');
  t.equal(sold.size, 1, 'expired entries are dropped when seen');
});

t.test('holds at most its capacity, forgetting the oldest first', async (t) => {
  const sold = new SoldSeats(() => 0, 5_000, 3);
  sold.remember('e', ['s1', 's2', 's3'], ['a', 'b', 'c']);
  sold.remember('e', ['s1'], 'a'); // s1 is now the newest
  sold.remember('e', ['s4'], 'd');
  t.equal(sold.size, 3);
  t.same(sold.sold('e', ['s1', 's2', 's3', 's4']), ['s1', 's3', 's4'], 's2, the oldest, was forgotten');
});

t.test('the refusal of seats known sold to others names only those that are sold, never their buyers', async (t) => {
  const sold = new SoldSeats(() => 0, 5_000, 100);
  t.equal(sold.refusal('e', ['A-1-1'], 'bob'), undefined, 'nothing known: ask the shard');
  sold.remember('e', ['A-1-1'], 'ann');
  const refusal = sold.refusal('e', ['A-1-1', 'A-1-2'], 'bob');
  t.match(refusal, { ok: false, type: 'unavailable', seats: ['A-1-1'], sold: ['A-1-1'] });
  t.notMatch(JSON.stringify(refusal), /ann/, 'the buyer is not named');
});

t.test("the buyer's own request is never refused here: the shard may remember its success", async (t) => {
  const sold = new SoldSeats(() => 0, 5_000, 100);
  sold.remember('e', ['A-1-1', 'A-1-2'], 'ann');
  sold.remember('e', ['A-1-3'], 'cy');
  t.equal(sold.refusal('e', ['A-1-1'], 'ann'), undefined, 'own purchase: ask the shard (it replays the success)');
  t.equal(sold.refusal('e', ['A-1-1', 'A-1-2'], 'ann'), undefined, 'all own purchases');
  t.match(sold.refusal('e', ['A-1-1'], 'bob'), { seats: ['A-1-1'] }, "another's purchase: refused at once");
  t.match(sold.refusal('e', ['A-1-1', 'A-1-3'], 'bob'), { seats: ['A-1-1', 'A-1-3'] }, 'all sold to others (several buyers)');
  t.equal(sold.refusal('e', ['A-1-3', 'A-1-1'], 'ann'), undefined, "mixed: one of the seats is the requester's own → ask the shard");
  t.equal(sold.refusal('e', ['A-1-1', 'A-1-3'], 'cy'), undefined, 'mixed, the other way round');
  t.equal(sold.refusal('e', ['A-1-9', 'A-1-2'], 'ann'), undefined, 'unknown seat plus own purchase');
  t.match(sold.refusal('e', ['A-1-9', 'A-1-2'], 'bob'), { seats: ['A-1-2'] }, 'unknown seat plus a sale to another');
});

t.test("learns from the shard's answers: reservations and refusals with their buyers", async (t) => {
  const sold = new SoldSeats(() => 0, 5_000, 100);
  const confirmed: ShardResult = {
    ok: true,
    type: 'confirmed',
    reservation: { reservationId: 'r1', holdId: 'h1', customer: 'ann', seats: ['A-1-1', 'A-1-2'], quantity: 2, confirmedAt: 0 },
  };
  sold.learn('e', confirmed);
  t.equal(sold.refusal('e', ['A-1-2'], 'ann'), undefined, "a reservation's seats are its customer's");
  t.match(sold.refusal('e', ['A-1-2'], 'bob'), { seats: ['A-1-2'] });

  sold.learn('e', {
    ok: false,
    type: 'unavailable',
    seats: ['A-2-1', 'A-2-2', 'A-2-3'],
    sold: ['A-2-1', 'A-2-3'],
    soldTo: ['cy', 'dee'],
    message: 'x',
  });
  t.equal(sold.refusal('e', ['A-2-1'], 'cy'), undefined, 'the buyers are aligned with the sold seats');
  t.equal(sold.refusal('e', ['A-2-3'], 'dee'), undefined);
  t.match(sold.refusal('e', ['A-2-3'], 'cy'), { seats: ['A-2-3'] });
  t.equal(sold.sold('e', ['A-2-2']), undefined, 'a seat that is only taken is not sold');

  const before = sold.size;
  sold.learn('e', { ok: false, type: 'unavailable', seats: ['A-3-1'], sold: ['A-3-1'], message: 'x' });
  sold.learn('e', { ok: false, type: 'unavailable', seats: ['A-3-2'], sold: ['A-3-2'], soldTo: [], message: 'x' });
  t.equal(sold.size, before, 'sold seats without their buyers teach nothing: the shard is asked');
  t.equal(sold.refusal('e', ['A-3-1'], 'bob'), undefined);
});

t.test('whenSold resolves once every seat is known sold, or at its bound', async (t) => {
  const sold = new SoldSeats(() => 0, 5_000, 100);
  sold.remember('e', ['A-1-1'], 'ann');
  const settled = () => new Promise((resolve) => setImmediate(resolve));
  let done = false;
  void sold.whenSold('e', ['A-1-1'], 60_000).then(() => (done = true));
  await settled();
  t.ok(done, 'known already: at once, not at its bound');

  let learned = false;
  const both = sold.whenSold('e', ['A-1-2', 'A-1-3'], 60_000).then(() => (learned = true));
  t.equal(sold.awaitedSeats, 2);
  sold.remember('e', ['A-1-2'], 'bob');
  sold.remember('f', ['A-1-3'], 'bob'); // another event's seat
  await settled();
  t.notOk(learned, 'not while a seat is still unknown');
  sold.remember('e', ['A-1-3'], 'cy');
  await settled();
  t.ok(learned, 'resolved when the last one is learned, not at its bound');
  await both;

  const started = performance.now();
  let hang: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    sold.whenSold('e', ['A-1-9'], 30).then(() => 'resolved'),
    new Promise((resolve) => (hang = setTimeout(resolve, 2_000, 'hung'))), // also keeps the process alive: the bound's timer does not
  ]);
  clearTimeout(hang);
  t.equal(outcome, 'resolved', 'a sale never announced is waited for no longer than the bound');
  t.ok(performance.now() - started >= 25, 'but for that long');
  t.equal(sold.awaitedSeats, 0, 'nobody waits any more, after a sale learned or a bound passed');
  sold.remember('e', ['A-1-9'], 'ann');
  t.equal(sold.size, 5);
});
