/**
 * The full local stack over HTTP: real engines (spawned like pods), the real ingress app, real
 * Redis, NATS, Postgres and Kafka. The seed's test made strict, then the idempotency, confirm,
 * expiry and foreign-token scenarios of issue 5.
 */
import t from 'tap';
import { keyDigest } from '../../../src/ingress/command-gate.js';
import { redisKeys } from '../../../src/ingress/redis-scripts.js';
import { PROBLEM_BASE } from '../../../src/ingress/problems.js';
import { inventoryViolations } from '../../support/invariants.js';
import { provisionTestEvent, scrapeCount, sleep, startEngine, testDatabase, testLayout, waitFor } from '../../support/stack.js';
import { reservationKeysOnTopic } from '../../support/topic.js';
import { call, eventPath, HARNESS_SETTINGS, startHarness, type Exchange } from './harness.js';

const pool = await testDatabase();
t.teardown(() => pool.end());
const spec = await provisionTestEvent(pool, {
  layout: testLayout({ rows: 8, seats: 20, pool: 40 }),
  shardCount: 2,
  customerLimit: 6,
  holdTtlMs: 60_000,
});
const shortHolds = await provisionTestEvent(pool, { shardCount: 1, holdTtlMs: 1000 });
// Debug logging on the first engine: its decisions carry the ingress's request ids.
const engines = [await startEngine(spec.eventId, { LOG_LEVEL: 'debug' }), await startEngine(shortHolds.eventId)];
t.teardown(async () => {
  for (const engine of engines) await engine.stop();
});
const harness = await startHarness(pool, { settings: { ...HARNESS_SETTINGS, shardTimeoutMs: 3000 } });
t.teardown(() => harness.close());
const url = harness.url;
const alice = await harness.token('alice');
const bob = await harness.token('bob');
let counter = 0;
const freshKey = () => `e2e-${process.pid}-${++counter}`;

// Engines report ready before every shard is claimed: wait until each shard holds a seat.
for (const [eventId, seat] of [
  [spec.eventId, 'A-8-20'],
  [spec.eventId, 'A-1-20'],
  [shortHolds.eventId, 'A-8-20'],
] as const) {
  await waitFor(
    `shard of ${eventId}/${seat} serving`,
    async () => {
      const r = await call(url, 'POST', `/v1/events/${eventId}/holds`, {
        token: await harness.token('warmup'),
        key: freshKey(),
        body: { seats: [seat] },
      });
      return r.status === 201;
    },
    30_000,
    250,
  );
}

async function seatVersion(seat: string): Promise<{ version: number; state: string }> {
  const { rows } = await pool.query<{ version: number; state: string }>(
    'SELECT version, state FROM seats WHERE event_id = $1 AND seat_id = $2',
    [spec.eventId, seat],
  );
  return rows[0]!;
}

/** The sum of the ingress's series of metric `name` that carry all `labels` (0 when there is none), as Prometheus would scrape it. */
const ingressMetric = (name: string, labels: Readonly<Record<string, string>> = {}) => scrapeCount(url, name, labels);

/** The engine's decisions so far, with `labels` (all of them when none); 0 before its first. */
const engineDecisions = (labels: Readonly<Record<string, string>> = {}) => engines[0]!.count('sentinel_engine_decisions_total', labels);

/**
 * Where a flash sale's requests were answered: how many the ingress sent to the shard (one NATS
 * round trip each, counted by the ingress), how many it refused itself as known sold, how many
 * waited for another customer's request (SeatFlights), and what the engine decided.
 */
async function answeredWhere() {
  return {
    toShard: await ingressMetric('sentinel_ingress_shard_request_duration_seconds_count', { command: 'reserve' }),
    knownSold: await ingressMetric('sentinel_ingress_known_sold_refusals_total'),
    flightWaits: await ingressMetric('sentinel_ingress_seat_flight_waits_total'),
    decided: await engineDecisions(),
    confirmed: await engineDecisions({ result: 'confirmed' }),
    unavailable: await engineDecisions({ result: 'unavailable' }),
  };
}

/** N different customers click the same seat at the same moment. */
async function flashSale(seat: string, clients: number): Promise<Exchange[]> {
  const tokens = await Promise.all(Array.from({ length: clients }, (_, i) => harness.token(`fan-${seat}-${i}`)));
  return Promise.all(
    tokens.map((token, i) => call(url, 'POST', eventPath(spec, `/seats/${seat}/reserve`), { token, key: `click-${seat}-${i}` })),
  );
}

for (const [seat, clients] of [
  ['A-2-7', 50],
  ['A-6-7', 1000],
] as const) {
  t.test(`the seed's test, strict: ${clients} clients reserve ${seat} at once`, async (t) => {
    const before = await seatVersion(seat);
    t.equal(before.state, 'available');
    const countsBefore = await answeredWhere();
    const started = Date.now();
    const responses = await flashSale(seat, clients);
    const elapsed = Date.now() - started;
    // The ingress answers most of a rush itself (SeatFlights makes the first wave wait for the
    // first request's answer, SoldSeats then refuses the rest), so one 201 alone does not show
    // that the shard sold once: it may have been asked once. How many requests it was asked, and
    // what it decided for them, come from the ingress's and the engine's own counters. This file
    // sends nothing else meanwhile, and the engine serves this event alone: the differences are
    // this sale's.
    const countsAfter = await answeredWhere();
    const counted = Object.fromEntries(
      Object.entries(countsAfter).map(([name, n]) => [name, n - countsBefore[name as keyof typeof countsBefore]]),
    ) as typeof countsAfter;
    const reached = counted.toShard;
    t.comment(
      `${reached} of ${clients} requests reached the shard; the ingress refused ${counted.knownSold} as known sold; ` +
        `${counted.flightWaits} waited for another's flight`,
    );
    t.ok(reached >= 1, `the shard was asked (${reached} times)`);
    t.equal(reached + counted.knownSold, clients, 'every request was either sent to the shard or refused by the ingress as known sold');
    t.equal(counted.decided, reached, 'the engine decided each request sent to it once (no retry decided again)');
    t.equal(counted.confirmed, 1, `of the ${reached} requests the shard decided, it sold the seat to one`);
    t.equal(counted.unavailable, reached - 1, 'and refused the others as unavailable');
    const statuses = new Map<number, number>();
    for (const r of responses) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    t.same(Object.fromEntries(statuses), { 201: 1, 409: clients - 1 }, `exactly one 201, ${clients - 1} × 409 (in ${elapsed} ms)`);
    const winner = responses.find((r) => r.status === 201)!;
    t.same(winner.body.seats, [seat]);
    for (const loser of responses.filter((r) => r.status === 409)) {
      t.equal(loser.body.type, PROBLEM_BASE + 'seats-unavailable');
    }
    const after = await seatVersion(seat);
    t.equal(after.state, 'sold');
    t.equal(after.version, before.version + 1, 'the seat row was written exactly once');
    const { rows } = await pool.query('SELECT reservation_id FROM reservations WHERE event_id = $1 AND $2 = ANY(seats)', [
      spec.eventId,
      seat,
    ]);
    t.same(
      rows.map((r) => r.reservation_id),
      [winner.body.reservationId],
      'one reservation in Postgres',
    );
    // A reservation is published again while its outbox row is unpublished (a send whose row was
    // not marked as published is sent again): once the event has no such row left, its copies are
    // on the topic, and the read below goes on to the topic's end after the event's last key, so it
    // sees them all — but for a send the broker appends late, after its timeout, which no read can wait for.
    await waitFor(
      'every outbox row of the event published',
      async () =>
        (
          await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE event_id = $1 AND published_at IS NULL', [
            spec.eventId,
          ])
        ).rows[0]!.n === 0,
      30_000,
      50,
    );
    const { rows: all } = await pool.query<{ reservation_id: string }>('SELECT reservation_id FROM reservations WHERE event_id = $1', [
      spec.eventId,
    ]);
    const keys = await reservationKeysOnTopic(spec.eventId, all.length, 30_000);
    t.equal(keys.filter((k) => k === winner.body.reservationId).length, 1, 'the reservation reached Kafka once');
    t.same(
      [...keys].sort(),
      all.map((r) => r.reservation_id).sort(),
      'every reservation of the event, and nothing else, is on the topic once',
    );
    t.same(await inventoryViolations(pool, spec.eventId), []);
  });
}

t.test('idempotency against the engine: replay over HTTP, and dedupe at the shard when Redis forgot', async (t) => {
  const key = freshKey();
  const body = { seats: ['A-3-1', 'A-3-2'] };
  const first = await call(url, 'POST', eventPath(spec, '/holds'), { token: alice, key, body });
  t.equal(first.status, 201);
  const replay = await call(url, 'POST', eventPath(spec, '/holds'), { token: alice, key, body });
  t.equal(replay.status, 201);
  t.equal(replay.headers.get('idempotent-replayed'), 'true');
  t.same(replay.body, first.body);
  t.equal((await call(url, 'POST', eventPath(spec, '/holds'), { token: alice, key, body: { seats: ['A-3-3'] } })).status, 422);

  // The ingress lost its record (Redis flushed, TTL passed): the shard still knows the key.
  await harness.redis.del(redisKeys.idempotency(spec.eventId, keyDigest('alice', key)));
  const afterLoss = await call(url, 'POST', eventPath(spec, '/holds'), { token: alice, key, body });
  t.equal(afterLoss.status, 201);
  t.equal(afterLoss.body.holdId, first.body.holdId, 'the same hold, not a second one');
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM holds WHERE event_id = $1 AND 'A-3-1' = ANY(seats)", [spec.eventId]);
  t.equal(rows[0].n, 1);
});

t.test('the request id travels from the client through the ingress into the engine log', async (t) => {
  const requestId = `trace-${process.pid}-${Date.now()}`;
  const held = await call(url, 'POST', eventPath(spec, '/holds'), {
    token: alice,
    key: freshKey(),
    body: { seats: ['A-2-5'] },
    headers: { 'x-request-id': requestId },
  });
  t.equal(held.status, 201);
  t.equal(held.headers.get('x-request-id'), requestId, 'echoed to the client');
  const line = await waitFor(
    'the engine to log the decision',
    () => engines[0]!.logs.find((l) => l.includes(`"requestId":"${requestId}"`)),
    5000,
  );
  t.match(JSON.parse(line), { msg: 'Decided', requestId, command: 'hold', result: 'held' });
});

t.test('two confirms of one hold race: one reservation, one 409', async (t) => {
  const hold = await call(url, 'POST', eventPath(spec, '/holds'), { token: alice, key: freshKey(), body: { section: 'A', quantity: 2 } });
  t.equal(hold.status, 201);
  const confirmPath = eventPath(spec, `/holds/${hold.body.holdId}/confirm`);
  const [a, b] = await Promise.all([
    call(url, 'POST', confirmPath, { token: alice, key: freshKey() }),
    call(url, 'POST', confirmPath, { token: alice, key: freshKey() }),
  ]);
  const statuses = [a.status, b.status].sort();
  t.same(statuses, [201, 409]);
  const loser = a.status === 409 ? a : b;
  const winner = a.status === 201 ? a : b;
  t.equal(loser.body.type, PROBLEM_BASE + 'hold-confirmed');
  t.equal(loser.body.reservationId, winner.body.reservationId);
  const mine = await call(url, 'GET', `/v1/reservations/${winner.body.reservationId}`, { token: alice });
  t.equal(mine.status, 200);
  t.same(mine.body, winner.body, 'the reservation as read back from Postgres equals the 201');
  const theirs = await call(url, 'GET', `/v1/reservations/${winner.body.reservationId}`, { token: bob });
  t.equal(theirs.status, 404);
});

t.test('confirm after expiry → 409 hold-expired; the seats are free again', async (t) => {
  const path = `/v1/events/${shortHolds.eventId}`;
  const hold = await call(url, 'POST', `${path}/holds`, { token: alice, key: freshKey(), body: { seats: ['A-1-1'] } });
  t.equal(hold.status, 201);
  await sleep(1600);
  const late = await call(url, 'POST', `${path}/holds/${hold.body.holdId}/confirm`, { token: alice, key: freshKey() });
  t.equal(late.status, 409);
  t.equal(late.body.type, PROBLEM_BASE + 'hold-expired');
  const again = await call(url, 'POST', `${path}/holds`, { token: bob, key: freshKey(), body: { seats: ['A-1-1'] } });
  t.equal(again.status, 201, 'another customer can hold the released seat');
});

t.test("another customer's token: 404 on the hold, nothing changes", async (t) => {
  const hold = await call(url, 'POST', eventPath(spec, '/holds'), { token: alice, key: freshKey(), body: { seats: ['A-4-1'] } });
  t.equal(hold.status, 201);
  const holdPath = eventPath(spec, `/holds/${hold.body.holdId}`);
  const confirm = await call(url, 'POST', `${holdPath}/confirm`, { token: bob, key: freshKey() });
  t.equal(confirm.status, 404);
  t.equal(confirm.body.type, PROBLEM_BASE + 'hold-not-found');
  t.equal((await call(url, 'DELETE', holdPath, { token: bob })).status, 404);
  t.equal(
    (await call(url, 'GET', eventPath(spec, '/seats?section=A'), { token: bob })).body.rows[3].seats[0].state,
    'held',
    'still held by alice',
  );
  t.equal((await call(url, 'DELETE', holdPath, { token: alice })).status, 204);
  t.equal((await call(url, 'DELETE', holdPath, { token: alice })).status, 204, 'DELETE again: still gone');
  const taken = await call(url, 'POST', eventPath(spec, '/holds'), { token: bob, key: freshKey(), body: { seats: ['A-4-1'] } });
  t.equal(taken.status, 201, 'released seats can be held again');
});

t.test('limits and pools against the engine', async (t) => {
  const carol = await harness.token('carol');
  t.equal(
    (await call(url, 'POST', eventPath(spec, '/holds'), { token: carol, key: freshKey(), body: { pool: 'GA', quantity: 5 } })).status,
    201,
  );
  const over = await call(url, 'POST', eventPath(spec, '/holds'), { token: carol, key: freshKey(), body: { seats: ['A-5-1', 'A-5-2'] } });
  t.equal(over.status, 422);
  t.equal(over.body.type, PROBLEM_BASE + 'limit-exceeded');
  t.match(over.body, { limit: 6 });
  const availability = await waitFor('availability to show the pool hold', async () => {
    const r = await call(url, 'GET', eventPath(spec, '/availability'), { token: carol });
    return r.body.pools[0].held >= 5 ? r : undefined;
  });
  t.match(availability.body.pools, [{ pool: 'GA', total: 40 }]);
  t.ok(availability.body.sections[0].sold >= 2, 'the flash-sale seats are sold');
  t.same(await inventoryViolations(pool, spec.eventId), []);
});

t.test('a refusal is never replayed: a retry with the same key after a 409 or 422 is decided afresh', async (t) => {
  // 409: the seat is held by alice; bob's key K is refused; alice releases; bob retries with K.
  const held = await call(url, 'POST', eventPath(spec, '/holds'), { token: alice, key: freshKey(), body: { seats: ['A-7-1'] } });
  t.equal(held.status, 201);
  const key = freshKey();
  const reserve = () => call(url, 'POST', eventPath(spec, '/seats/A-7-1/reserve'), { token: bob, key });
  const lost = await reserve();
  t.equal(lost.status, 409);
  t.equal(lost.body.type, PROBLEM_BASE + 'seats-unavailable');
  t.equal((await call(url, 'DELETE', eventPath(spec, `/holds/${held.body.holdId}`), { token: alice })).status, 204);
  const won = await reserve();
  t.equal(won.status, 201, `the retry is a new decision, not the 409 replayed (${won.text.slice(0, 200)})`);
  t.same(won.body.seats, ['A-7-1']);
  t.equal(won.headers.get('idempotent-replayed'), null);
  const again = await reserve();
  t.equal(again.status, 201);
  t.equal(again.headers.get('idempotent-replayed'), 'true', 'a success is replayed');
  t.same(again.body, won.body);

  // 422: dave is at his limit (6) with 5 seats held; a hold of 2 with key L is refused; he
  // releases the 5; the retry with L holds.
  const dave = await harness.token('dave');
  const five = await call(url, 'POST', eventPath(spec, '/holds'), {
    token: dave,
    key: freshKey(),
    body: { seats: ['A-7-11', 'A-7-12', 'A-7-13', 'A-7-14', 'A-7-15'] },
  });
  t.equal(five.status, 201);
  const limitKey = freshKey();
  const two = () => call(url, 'POST', eventPath(spec, '/holds'), { token: dave, key: limitKey, body: { seats: ['A-7-17', 'A-7-18'] } });
  const over = await two();
  t.equal(over.status, 422);
  t.equal(over.body.type, PROBLEM_BASE + 'limit-exceeded');
  t.equal((await call(url, 'DELETE', eventPath(spec, `/holds/${five.body.holdId}`), { token: dave })).status, 204);
  const within = await two();
  t.equal(within.status, 201, `the limit has room again (${within.text.slice(0, 200)})`);
  t.same(within.body.seats, ['A-7-17', 'A-7-18']);
  t.same(await inventoryViolations(pool, spec.eventId), []);
});

t.test("a hold's Location answers GET: the hold as committed, then confirmed with its reservation", async (t) => {
  const erin = await harness.token('erin');
  const hold = await call(url, 'POST', eventPath(spec, '/holds'), { token: erin, key: freshKey(), body: { seats: ['A-7-5', 'A-7-6'] } });
  t.equal(hold.status, 201, hold.text.slice(0, 200));
  const location = hold.headers.get('location')!;
  const live = await call(url, 'GET', location, { token: erin });
  t.equal(live.status, 200);
  t.same(live.body, { ...hold.body, state: 'live' }, 'what the 201 said, and that it is live');
  t.equal((await call(url, 'GET', location, { token: bob })).status, 404, "another customer's hold is not found");
  const confirmed = await call(url, 'POST', `${location}/confirm`, { token: erin, key: freshKey() });
  t.equal(confirmed.status, 201);
  const after = await call(url, 'GET', location, { token: erin });
  t.equal(after.status, 200);
  t.match(after.body, { holdId: hold.body.holdId, state: 'confirmed', reservationId: confirmed.body.reservationId });
});

t.test('a sale through one ingress replica is known to the others: they refuse its later buyers without a shard', async (t) => {
  const replica = await startHarness(pool, { settings: { ...HARNESS_SETTINGS, shardTimeoutMs: 3000 } });
  t.teardown(() => replica.close());
  const counter = (name: string) => scrapeCount(replica.url, name);
  const seat = 'A-3-9';
  const sale = await call(url, 'POST', eventPath(spec, `/seats/${seat}/reserve`), { token: await harness.token('sal'), key: freshKey() });
  t.equal(sale.status, 201, 'sold through the first replica');
  // The commit's announcement reaches the other replica a moment after the 201.
  await waitFor('the other replica heard of the sale', async () => (await counter('sentinel_ingress_sales_heard_total')) >= 1, 5000, 10);
  const refusedBefore = await counter('sentinel_ingress_known_sold_refusals_total');
  const late = await call(replica.url, 'POST', eventPath(spec, `/seats/${seat}/reserve`), {
    token: await harness.token('ben'),
    key: freshKey(),
  });
  t.equal(late.status, 409);
  t.same(late.body.seats, [seat]);
  t.equal(
    (await counter('sentinel_ingress_known_sold_refusals_total')) - refusedBefore,
    1,
    'refused by the replica itself, which never took part in the sale',
  );
});
