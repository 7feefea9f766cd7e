import t from 'tap';
import { SeatFlights } from '../../../src/ingress/seat-flights.js';

/** Whether `promise` has settled by the end of the current turn's microtasks. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

t.test('a request waits for the flight over its seat, per event', async (t) => {
  const flights = new SeatFlights(60_000);
  t.equal(flights.landing('e1', ['A-1-1'], 'cy'), undefined, 'nobody is asking at first');
  const land = flights.depart('e1', ['A-1-1', 'A-1-2'], 'ann');
  t.equal(flights.size, 2);
  t.equal(flights.landing('e2', ['A-1-1'], 'cy'), undefined, 'another event is another seat');
  t.equal(flights.landing('e1', ['A-1-3'], 'cy'), undefined, 'another seat has no flight');
  const waiting = flights.landing('e1', ['A-1-3', 'A-1-2'], 'cy')!;
  t.ok(waiting, 'a request naming one of its seats waits');
  t.notOk(await settled(waiting), 'until it lands');
  land();
  t.ok(await settled(waiting), 'then goes on');
  t.equal(flights.size, 0, 'a landed flight is forgotten');
  t.equal(flights.landing('e1', ['A-1-1'], 'cy'), undefined);
  land(); // a second call does nothing
  t.equal(flights.size, 0);
});

t.test('a flight given something to wait for lands when it settles, not when its request ends', async (t) => {
  const flights = new SeatFlights(60_000);
  const land = flights.depart('e', ['A-1-1'], 'ann');
  const waiting = flights.landing('e', ['A-1-1'], 'cy')!;
  let announce!: () => void;
  land(new Promise<void>((resolve) => (announce = resolve)));
  land(); // the request ends: the flight is still up
  t.notOk(await settled(waiting), 'its waiters wait for the announcement');
  t.equal(flights.size, 1);
  announce();
  t.ok(await settled(waiting), 'and go on once it came');
  t.equal(flights.size, 0);
});

t.test('a seat keeps its first flight; a request waits for every flight over its seats', async (t) => {
  const flights = new SeatFlights(60_000);
  const landA = flights.depart('e', ['s1'], 'ann');
  const landB = flights.depart('e', ['s1', 's2'], 'bob'); // s1 is A's: B only takes s2
  t.equal(flights.size, 2);
  const both = flights.landing('e', ['s1', 's2'], 'cy')!;
  landB();
  t.notOk(await settled(both), "B landed; A's flight is still under way");
  t.ok(flights.landing('e', ['s1'], 'cy'), 'and still known');
  t.equal(flights.landing('e', ['s2'], 'cy'), undefined, "B's seat is free");
  landA();
  t.ok(await settled(both), 'both landed');
  t.equal(flights.size, 0);
});

t.test('one flight named by several seats is waited for once', async (t) => {
  const flights = new SeatFlights(60_000);
  const land = flights.depart('e', ['s1', 's2', 's3'], 'ann');
  const waiting = flights.landing('e', ['s1', 's2', 's3'], 'cy')!;
  t.equal(flights.landing('e', ['s2', 's3'], 'cy'), flights.landing('e', ['s1'], 'cy'), 'the same landing, not a combination');
  land();
  t.ok(await settled(waiting));
});

t.test('nobody waits for a flight of their own', async (t) => {
  const flights = new SeatFlights(60_000);
  const land = flights.depart('e', ['s1'], 'ann');
  t.equal(flights.landing('e', ['s1'], 'ann'), undefined, "ann's second request goes on: the gate and the shard answer it");
  t.ok(flights.landing('e', ['s1'], 'bob'), 'bob waits');
  const landOwn = flights.depart('e', ['s1'], 'ann');
  t.equal(flights.size, 1, 'the seat keeps its first flight');
  landOwn();
  t.ok(flights.landing('e', ['s1'], 'bob'), 'which a later one landing does not end');
  land();
  t.equal(flights.landing('e', ['s1'], 'bob'), undefined);
});

t.test('nobody waits longer than the bound: a flight held up lets its waiters go, and nobody new waits for it', async (t) => {
  const flights = new SeatFlights(20);
  const land = flights.depart('e', ['s1'], 'ann');
  const waiting = flights.landing('e', ['s1'], 'bob')!;
  t.notOk(await settled(waiting), 'bob waits');
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.ok(await settled(waiting), 'until the bound, then goes to the shard');
  t.equal(flights.landing('e', ['s1'], 'cy'), undefined, 'a later request does not wait at all');
  t.equal(flights.size, 1, 'the flight is still under way');
  const again = flights.depart('e', ['s1'], 'cy');
  t.equal(flights.size, 1, 'and keeps its seat');
  again();
  land();
  t.equal(flights.size, 0, 'until it lands');
});
