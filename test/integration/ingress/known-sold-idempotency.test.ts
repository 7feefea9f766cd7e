/**
 * Seats known to be sold (ADR 0008, decisions 2 and 8) and the Idempotency-Key: the ingress
 * refuses a seat it knows is sold without asking the shard — but never to the customer who bought
 * it, whose request may be the retry of the one that bought it. A free key in Redis does not prove
 * that customer never won: the shard may remember a success Redis does not (it committed after the
 * ingress's deadline and the 503 gave the key back; the 201 was never stored, or its record was
 * lost). Same key + same body → the first success, never a 409 to the buyer.
 *
 * The real ingress against real Redis, NATS and Postgres, with a fake shard that behaves as the
 * shard does: it remembers a success per key and replays it, and names each sold seat's buyer in
 * its refusals.
 */
import t from 'tap';
import type { ShardResult } from '../../../src/domain/commands.js';
import { keyDigest } from '../../../src/ingress/command-gate.js';
import { redisKeys } from '../../../src/ingress/redis-scripts.js';
import { testLayout } from '../../support/stack.js';
import { call, eventPath, fakeShardStack } from './harness.js';

const { spec, harness, shards } = await fakeShardStack(t, { layout: testLayout({ rows: 8, seats: 20 }), shardCount: 2 });
const [alice, bob, carol] = await Promise.all([harness.token('alice'), harness.token('bob'), harness.token('carol')]);
const now = Date.now();

/** A seat's sale as the shard decided it: its buyer, and the reservation replayed for the buyer's key. */
interface Sale {
  readonly buyer: string;
  readonly key: string;
  readonly result: ShardResult;
}

/**
 * Scripts the fake shard as the real one behaves for `seats`: a seat is sold once `sales` names
 * it; the buyer's key replays the sale; everyone else is refused, the seat named sold to its
 * buyer. `silent(command)` lets a request time out (the commit outlasting the ingress's deadline).
 */
function shardLike(sales: Map<string, Sale>, silent: (customer: string) => boolean): void {
  shards.answer = ({ command }) => {
    if (silent(command.customer)) return 'silence';
    const seats = command.type === 'reserve' ? [command.seat] : command.type === 'hold' ? [...command.seats] : [];
    const replay = seats.map((seat) => sales.get(seat)).find((sale) => sale?.buyer === command.customer && sale.key === command.key);
    if (replay !== undefined) return replay.result;
    const sold = seats.filter((seat) => sales.has(seat));
    return {
      ok: false,
      type: 'unavailable',
      seats: sold,
      sold,
      soldTo: sold.map((seat) => sales.get(seat)!.buyer),
      message: `seats ${sold.join(', ')} are not available`,
    };
  };
}

function reservation(customer: string, seat: string, n: number): ShardResult {
  return {
    ok: true,
    type: 'confirmed',
    reservation: { reservationId: `r_${n}`, holdId: `h_${n}`, customer, seats: [seat], quantity: 1, confirmedAt: now },
  };
}

t.test('a buyer whose 503 hid a late commit gets the 201 on retry, after others taught the ingress the seat is sold', async (t) => {
  const seat = 'A-1-1';
  const path = eventPath(spec, `/seats/${seat}/reserve`);
  const sales = new Map<string, Sale>();
  let committed = false;
  shardLike(sales, (customer) => customer === 'alice' && !committed);

  // The shard decides alice's reserve but its commit outlasts the ingress's deadline: 503, and the
  // key is given back so her retry is decided afresh.
  const first = await call(harness.url, 'POST', path, { token: alice, key: 'alice-k1' });
  t.equal(first.status, 503, `the first answer is 503 (${first.text.slice(0, 200)})`);
  t.ok(first.headers.get('retry-after'), 'with Retry-After: retry with the same key');
  const aliceShardKey = shards.calls.find((c) => c.command.customer === 'alice')!.command.key;
  t.equal(aliceShardKey, keyDigest('alice', 'alice-k1'));
  // The commit lands: the shard remembers alice's success under her key.
  committed = true;
  sales.set(seat, { buyer: 'alice', key: aliceShardKey, result: reservation('alice', seat, 1) });

  // Bob asks the shard and is refused: the ingress now knows the seat is sold — to alice.
  const lost = await call(harness.url, 'POST', path, { token: bob, key: 'bob-k1' });
  t.equal(lost.status, 409);
  t.notMatch(lost.text, /alice/, 'the 409 does not name the buyer');

  // Alice retries with the same key, as the 503 told her: the shard is asked and replays her sale.
  let asked = shards.calls.length;
  const retry = await call(harness.url, 'POST', path, { token: alice, key: 'alice-k1' });
  t.equal(retry.status, 201, `the buyer's retry gets her reservation (${retry.text.slice(0, 200)})`);
  t.match(retry.body, { reservationId: 'r_1', seats: [seat] });
  t.equal(shards.calls.length, asked + 1, 'the shard was asked (it remembers the success)');
  t.equal(shards.calls.at(-1)!.command.key, aliceShardKey, 'under her key');

  // Stored now: replayed from Redis, no shard.
  asked = shards.calls.length;
  const again = await call(harness.url, 'POST', path, { token: alice, key: 'alice-k1' });
  t.equal(again.status, 201);
  t.equal(again.headers.get('idempotent-replayed'), 'true');
  t.same(again.body, retry.body);
  t.equal(shards.calls.length, asked, 'replayed without the shard');

  // Anyone else is still refused by the ingress alone, and not told who bought it.
  for (const [token, key] of [
    [carol, 'carol-k1'],
    [bob, 'bob-k2'],
  ] as const) {
    const refused = await call(harness.url, 'POST', path, { token, key });
    t.equal(refused.status, 409);
    t.same(refused.body.seats, [seat]);
    t.notMatch(refused.text, /alice/, 'the 409 does not name the buyer');
  }
  const hold = await call(harness.url, 'POST', eventPath(spec, '/holds'), {
    token: carol,
    key: 'carol-k2',
    body: { seats: [seat, 'A-1-2'] },
  });
  t.equal(hold.status, 409);
  t.same(hold.body.seats, [seat]);
  t.equal(shards.calls.length, asked, 'no shard was asked for a seat known sold to another customer');
});

t.test('a buyer whose stored 201 is lost in Redis gets it again from the shard, not a 409', async (t) => {
  const seat = 'A-2-1';
  const path = eventPath(spec, `/seats/${seat}/reserve`);
  const sales = new Map<string, Sale>();
  shardLike(sales, () => false);
  sales.set(seat, { buyer: 'alice', key: keyDigest('alice', 'alice-k2'), result: reservation('alice', seat, 2) });

  const won = await call(harness.url, 'POST', path, { token: alice, key: 'alice-k2' });
  t.equal(won.status, 201, 'the reservation taught the ingress the seat is sold to alice');
  await harness.redis.del(redisKeys.idempotency(spec.eventId, keyDigest('alice', 'alice-k2')));

  const asked = shards.calls.length;
  const retry = await call(harness.url, 'POST', path, { token: alice, key: 'alice-k2' });
  t.equal(retry.status, 201, `replayed by the shard (${retry.text.slice(0, 200)})`);
  t.same(retry.body, won.body);
  t.equal(shards.calls.length, asked + 1, 'the shard was asked');

  const refused = await call(harness.url, 'POST', path, { token: bob, key: 'bob-k3' });
  t.equal(refused.status, 409);
  t.equal(shards.calls.length, asked + 1, "another customer's request is refused without the shard");
});

t.test('a request naming seats sold to others and one sold to the requester goes to the shard', async (t) => {
  const sales = new Map<string, Sale>();
  shardLike(sales, () => false);
  sales.set('A-3-1', { buyer: 'alice', key: keyDigest('alice', 'alice-k3'), result: reservation('alice', 'A-3-1', 3) });
  sales.set('A-3-2', { buyer: 'bob', key: keyDigest('bob', 'bob-k4'), result: reservation('bob', 'A-3-2', 4) });
  t.equal((await call(harness.url, 'POST', eventPath(spec, '/seats/A-3-1/reserve'), { token: alice, key: 'alice-k3' })).status, 201);
  t.equal((await call(harness.url, 'POST', eventPath(spec, '/seats/A-3-2/reserve'), { token: bob, key: 'bob-k4' })).status, 201);

  const body = { seats: ['A-3-2', 'A-3-1'] };
  let asked = shards.calls.length;
  const mixed = await call(harness.url, 'POST', eventPath(spec, '/holds'), { token: alice, key: 'alice-k4', body });
  t.equal(mixed.status, 409, 'refused — by the shard');
  t.equal(shards.calls.length, asked + 1, 'one of the seats is her own purchase: the shard decides');
  asked = shards.calls.length;
  const others = await call(harness.url, 'POST', eventPath(spec, '/holds'), { token: carol, key: 'carol-k3', body });
  t.equal(others.status, 409);
  t.same(others.body.seats, ['A-3-2', 'A-3-1']);
  t.equal(shards.calls.length, asked, 'all sold to others: refused by the ingress alone');
});

t.test('a hold whose 503 hid a late commit is replayed on retry even after its seat sold to someone else', async (t) => {
  // Alice's hold of the seat commits after the ingress's deadline: 503. Her hold expires, and bob
  // buys the seat: the ingress knows it sold — to bob. Alice retries with the same key, as the 503
  // told her. A free key would let the ingress refuse her at once; but her key was sent to the
  // shard and never answered, so the shard must say — and it replays her hold (expired since,
  // which her confirm will be told), not a 409 for a request it carried out.
  const seat = 'A-5-1';
  let committed = false;
  const aliceHold: ShardResult = {
    ok: true,
    type: 'held',
    hold: { holdId: 'h_alice', customer: 'alice', seats: [seat], quantity: 1, createdAt: now, expiresAt: now + 1000 },
  };
  shards.answer = ({ command }) => {
    if (command.customer === 'alice') return committed ? aliceHold : 'silence';
    if (command.customer === 'bob') return reservation('bob', seat, 5);
    return { ok: false, type: 'unavailable', seats: [seat], sold: [seat], soldTo: ['bob'], message: `seat ${seat} is sold` };
  };
  const hold = (token: string, key: string) =>
    call(harness.url, 'POST', eventPath(spec, '/holds'), { token, key, body: { seats: [seat] } });

  const first = await hold(alice, 'alice-k5');
  t.equal(first.status, 503, `no answer in time (${first.text.slice(0, 120)})`);
  committed = true;
  t.equal((await call(harness.url, 'POST', eventPath(spec, `/seats/${seat}/reserve`), { token: bob, key: 'bob-k5' })).status, 201);
  let asked = shards.calls.length;
  t.equal((await hold(carol, 'carol-k5')).status, 409, 'the ingress knows the seat is sold to bob');
  t.equal(shards.calls.length, asked, 'and refuses others by itself');

  const retry = await hold(alice, 'alice-k5');
  t.equal(retry.status, 201, `alice's retry gets her hold back (${retry.text.slice(0, 200)})`);
  t.match(retry.body, { holdId: 'h_alice', seats: [seat] });
  t.equal(shards.calls.at(-1)!.command.key, keyDigest('alice', 'alice-k5'), 'from the shard, under her key');

  // A new request of hers for the seat is refused by the ingress alone: its key was never sent.
  asked = shards.calls.length;
  t.equal((await hold(alice, 'alice-k6')).status, 409);
  t.equal(shards.calls.length, asked, 'refused without the shard');
});
