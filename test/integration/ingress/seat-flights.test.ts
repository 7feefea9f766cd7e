/**
 * Requests for a seat another request is asking its shard about wait for that answer first (ADR
 * 0008, decision 15; src/ingress/seat-flights.ts): a rush on one seat costs the shard one request
 * per ingress, not one per buyer — but never answers a buyer's own request from it, and a first
 * answer that teaches nothing sends everyone waiting to the shard together, not one at a time.
 * Nobody waits for their own request.
 *
 * The real ingress against real Redis, NATS and Postgres, with a fake shard that takes its time.
 */
import t from 'tap';
import type { ShardResult } from '../../../src/domain/commands.js';
import { encode, salesSubject } from '../../../src/engine/protocol.js';
import { testLayout } from '../../support/stack.js';
import { call, eventPath, fakeShardStack, HARNESS_SETTINGS, startHarness, type FakeCall } from './harness.js';

// The shard takes its time here (300 ms and more): the waiters wait for as long as it takes, and
// the shard client does not resend a request it is still deciding (one attempt waits a quarter of
// the deadline: 2.5 s, not the harness's 375 ms, which a loaded machine can outlast).
const { pool, spec, harness, shards } = await fakeShardStack(
  t,
  { layout: testLayout({ rows: 8, seats: 20 }), shardCount: 2 },
  { settings: { ...HARNESS_SETTINGS, shardTimeoutMs: 10_000, seatFlightWaitMs: 10_000 } },
);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seatOf = (call: FakeCall) =>
  call.command.type === 'reserve' ? [call.command.seat] : call.command.type === 'hold' ? call.command.seats : [];
const callsFor = (seat: string) => shards.calls.filter((c) => seatOf(c).includes(seat));

async function until(what: string, done: () => boolean): Promise<void> {
  for (let waited = 0; !done(); waited += 5) {
    if (waited > 5000) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function confirmed(customer: string, seat: string): ShardResult {
  return {
    ok: true,
    type: 'confirmed',
    reservation: { reservationId: `r_${seat}`, holdId: `h_${seat}`, customer, seats: [seat], quantity: 1, confirmedAt: Date.now() },
  };
}

function soldTo(buyer: string, seat: string): ShardResult {
  return { ok: false, type: 'unavailable', seats: [seat], sold: [seat], soldTo: [buyer], message: `seat ${seat} is not available` };
}

const tokens = await Promise.all(Array.from({ length: 12 }, (_, i) => harness.token(`buyer-${i}`)));

t.test('a rush on one seat: the first request asks the shard, the others learn from its answer', async (t) => {
  const seat = 'A-1-1';
  const path = eventPath(spec, `/seats/${seat}/reserve`);
  let release!: () => void;
  const answered = new Promise<void>((resolve) => (release = resolve));
  // The shard sells the seat to the first request it hears of, and takes its time to commit.
  shards.answer = (c) => (callsFor(seat).length === 1 ? answered.then(() => confirmed(c.command.customer, seat)) : soldTo('buyer-0', seat));

  const first = call(harness.url, 'POST', path, { token: tokens[0]!, key: 'rush-0' });
  await until('the first request to reach the shard', () => callsFor(seat).length === 1);
  // buyer-0 sends a second request of her own: it does not wait for her first, the shard answers it.
  const own = await call(harness.url, 'POST', path, { token: tokens[0]!, key: 'rush-0-again' });
  t.equal(own.status, 409, `her second request is answered by the shard (${own.text.slice(0, 200)})`);
  t.equal(callsFor(seat).length, 2);
  // The rest of the crowd arrives while the first is in flight.
  const crowd = tokens.slice(1).map((token, i) => call(harness.url, 'POST', path, { token, key: `rush-${i + 1}` }));
  await sleep(300);
  t.equal(callsFor(seat).length, 2, 'they do not ask the shard while the first request is in flight');
  release();

  t.equal((await first).status, 201, 'the first request bought the seat');
  const refused = await Promise.all(crowd);
  t.same(
    refused.map((r) => r.status),
    crowd.map(() => 409),
    'everyone else is refused',
  );
  t.same(refused[0]!.body.seats, [seat], 'naming the seat');
  t.equal(callsFor(seat).length, 2, 'by the ingress alone');
  t.same(
    callsFor(seat).map((c) => c.command.customer),
    ['buyer-0', 'buyer-0'],
  );

  // The seat is known sold to buyer-0 now. Her next request goes to the shard (it may be a retry
  // of the one that bought it) and is a flight, but nobody waits for it: they are refused at once.
  let later!: () => void;
  const laterAnswered = new Promise<void>((resolve) => (later = resolve));
  shards.answer = () => laterAnswered.then(() => soldTo('buyer-0', seat));
  const hers = call(harness.url, 'POST', path, { token: tokens[0]!, key: 'rush-0-third' });
  await until('her request to reach the shard', () => callsFor(seat).length === 3);
  const other = await Promise.race([
    call(harness.url, 'POST', path, { token: tokens[6]!, key: 'after-sale' }),
    sleep(1000).then(() => undefined),
  ]);
  t.equal(other?.status, 409, "another customer is refused at once, without waiting for her request's answer");
  later();
  t.equal((await hers).status, 409);
});

t.test('a first answer that teaches nothing sends everyone waiting to the shard together', async (t) => {
  const seat = 'A-2-1';
  const path = eventPath(spec, '/holds');
  const waiters = tokens.slice(1, 6);
  let release!: () => void;
  const answered = new Promise<void>((resolve) => (release = resolve));
  let outstanding = 0;
  let mostOutstanding = 0;
  let allWaiting!: () => void;
  const allAsked = new Promise<void>((resolve) => (allWaiting = resolve));
  shards.answer = (c) => {
    // A hold, not a sale: the ingress cannot refuse anyone from it.
    if (callsFor(seat).length === 1)
      return answered.then(() => ({ ok: true, type: 'held', hold: holdOf(c.command.customer, seat) }) as ShardResult);
    // Each waiter's answer waits until every waiter has asked: served one at a time, they never would.
    mostOutstanding = Math.max(mostOutstanding, ++outstanding);
    if (outstanding === waiters.length) allWaiting();
    return Promise.race([allAsked, sleep(3000)]).then(() => {
      outstanding--;
      return { ok: false, type: 'unavailable', seats: [seat], message: `seat ${seat} is held` } as ShardResult;
    });
  };

  const first = call(harness.url, 'POST', path, { token: tokens[0]!, key: 'hold-0', body: { seats: [seat] } });
  await until('the first request to reach the shard', () => callsFor(seat).length === 1);
  const rest = waiters.map((token, i) => call(harness.url, 'POST', path, { token, key: `hold-${i + 1}`, body: { seats: [seat] } }));
  await sleep(300);
  t.equal(callsFor(seat).length, 1, 'they wait for the first answer');
  release();

  t.equal((await first).status, 201);
  t.same(
    (await Promise.all(rest)).map((r) => r.status),
    rest.map(() => 409),
  );
  t.equal(callsFor(seat).length, 1 + waiters.length, 'then every one of them asked the shard');
  t.equal(mostOutstanding, waiters.length, 'all at once');
});

t.test("a flight held up (the winner's commit is slow) does not hold up the losers", async (t) => {
  // An ingress with the default bound, beside the file's one, on the same NATS subjects; its shard
  // deadline is long, so the winner's request does not simply time out within the test.
  const quick = await startHarness(pool, { settings: { ...HARNESS_SETTINGS, shardTimeoutMs: 10_000 } });
  t.teardown(() => quick.close());
  const seat = 'A-3-1';
  const path = eventPath(spec, `/seats/${seat}/reserve`);
  let release!: () => void;
  const committed = new Promise<void>((resolve) => (release = resolve));
  // The shard decided the first request a winner; its commit takes as long as the test says. The
  // others it refuses at once, as the real shard does (not yet naming the seat sold: not durable).
  shards.answer = (c) =>
    callsFor(seat).length === 1
      ? committed.then(() => confirmed(c.command.customer, seat))
      : { ok: false, type: 'unavailable', seats: [seat], message: `seat ${seat} is not available` };

  const first = call(quick.url, 'POST', path, { token: tokens[0]!, key: 'slow-0' });
  await until('the first request to reach the shard', () => callsFor(seat).length === 1);
  const answered = Promise.all(tokens.slice(1, 6).map((token, i) => call(quick.url, 'POST', path, { token, key: `slow-${i + 1}` })));
  const losers = await Promise.race([answered, sleep(1500).then(() => undefined)]);
  t.same(
    losers?.map((r) => r.status),
    [409, 409, 409, 409, 409],
    'the losers are answered while the winner is still being committed',
  );
  t.equal(callsFor(seat).length, 6, 'by the shard');
  release();
  t.equal((await first).status, 201);
});

t.test("a flight refused while another ingress's winner is being committed lands with the sale's announcement", async (t) => {
  // The winner's request went through another ingress; its commit is under way. The shard refuses
  // this ingress's flight naming the seat `pending` (not yet sold for good), and announces the sale
  // once it is committed: the flight's waiters learn it then, without asking.
  const seat = 'A-4-1';
  const path = eventPath(spec, `/seats/${seat}/reserve`);
  let answer!: () => void;
  const answered = new Promise<void>((resolve) => (answer = resolve));
  shards.answer = () =>
    answered.then((): ShardResult => ({
      ok: false,
      type: 'unavailable',
      seats: [seat],
      pending: [seat],
      message: `seat ${seat} is not available`,
    }));

  const flight = call(harness.url, 'POST', path, { token: tokens[1]!, key: 'pending-1' });
  await until('the flight to reach the shard', () => callsFor(seat).length === 1);
  const waiters = tokens.slice(2, 7).map((token, i) => call(harness.url, 'POST', path, { token, key: `pending-${i + 2}` }));
  await sleep(100);
  answer();
  t.equal((await flight).status, 409, 'the flight is answered at once');
  await sleep(300);
  t.equal(callsFor(seat).length, 1, 'its waiters wait for the announcement');
  harness.nc.publish(salesSubject(spec.eventId), encode({ seats: [seat], buyers: ['buyer-0'] }));
  t.same(
    (await Promise.all(waiters)).map((r) => r.status),
    waiters.map(() => 409),
  );
  t.equal(callsFor(seat).length, 1, 'and are refused by the ingress alone once it came');
});

function holdOf(customer: string, seat: string) {
  const now = Date.now();
  return { holdId: `h_${customer}`, customer, seats: [seat], quantity: 1, createdAt: now, expiresAt: now + 60_000 };
}
