/**
 * The HTTP layer against real Redis, NATS and Postgres, with a scripted fake shard answering on
 * the shards' NATS subjects: every route, every mapping of a shard result or failure, every
 * validation problem, idempotency, admission, health and shutdown. Every response is checked
 * against the OpenAPI document.
 */
import t, { type Test } from 'tap';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { fingerprintOf } from '../../../src/domain/idempotency.js';
import { redisKeys } from '../../../src/ingress/redis-scripts.js';
import { createPgPool } from '../../../src/adapters/postgres/pool.js';
import { createRedis } from '../../../src/adapters/redis/client.js';
import { closeNats } from '../../../src/adapters/nats/connection.js';
import { mintToken } from '../../../src/ingress/auth.js';
import { canonicalPath, CommandGate, keyDigest, requestFingerprint, strictPassKey } from '../../../src/ingress/command-gate.js';
import { DependencyError } from '../../../src/errors.js';
import { encode } from '../../../src/engine/protocol.js';
import { PROBLEM_BASE } from '../../../src/ingress/problems.js';
import { READINESS_CACHE_MS } from '../../../src/ingress/readiness.js';
import { silentLogger } from '../../../src/log.js';
import { provisionTestEvent, testLayout, waitFor } from '../../support/stack.js';
import { call, config, eventPath, fakeShardStack, FakeShards, HARNESS_SETTINGS, startHarness, type Exchange } from './harness.js';

const { pool, spec, harness, shards } = await fakeShardStack(t, {
  layout: testLayout({ rows: 8, seats: 20, pool: 50 }),
  shardCount: 2,
  customerLimit: 6,
});
const alice = await harness.token('alice');
const bob = await harness.token('bob');
const url = harness.url;
const api = harness.app.openapi;
let keyCounter = 0;
const freshKey = () => `key-${process.pid}-${++keyCounter}`;

const now = Date.now();
const heldResult = (seats: string[], holdId = `h_${freshKey()}`): ShardResult => ({
  ok: true,
  type: 'held',
  hold: { holdId, customer: 'alice', seats, quantity: seats.length, createdAt: now, expiresAt: now + 60_000 },
});
const confirmedResult = (holdId: string, seats: string[]): ShardResult => ({
  ok: true,
  type: 'confirmed',
  reservation: { reservationId: `r_${holdId}`, holdId, customer: 'alice', seats, quantity: seats.length, confirmedAt: now },
});

/** Asserts status and problem type, and that the response — body and headers — matches the document. */
function expect(t: Test, response: Exchange, operationId: string, status: number, problem?: string): void {
  t.equal(response.status, status, `${operationId} → ${status} (${response.text.slice(0, 300)})`);
  if (problem !== undefined) {
    t.equal(response.body?.type, PROBLEM_BASE + problem);
    t.match(response.headers.get('content-type'), /^application\/problem\+json/);
    t.equal(response.body?.requestId, response.headers.get('x-request-id'), 'the problem quotes the request id');
  }
  t.same(api.checkResponse(operationId, status, response.body, response.headers), [], `${operationId} ${status} conforms to the document`);
}

const holdPath = eventPath(spec, '/holds');
const post = (path: string, options: Parameters<typeof call>[3] = {}) =>
  call(url, 'POST', path, { token: alice, key: freshKey(), ...options });

t.test('authentication', async (t) => {
  const none = await call(url, 'POST', holdPath, { key: 'x', body: { seats: ['A-1-1'] } });
  expect(t, none, 'createHold', 401, 'unauthorized');
  t.equal(none.headers.get('www-authenticate'), 'Bearer realm="sentinel"');
  const forged = await call(url, 'GET', eventPath(spec, '/availability'), { token: alice.slice(0, -4) + 'AAAA' });
  expect(t, forged, 'getAvailability', 401, 'unauthorized');
  t.match(forged.headers.get('www-authenticate'), /error="invalid_token"/);
  const expired = await mintToken({
    secret: config.jwtSecret,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    subject: 'alice',
    ttlS: 60,
    now: Date.now() - 3_600_000,
  });
  const late = await call(url, 'GET', eventPath(spec, '/availability'), { token: expired });
  expect(t, late, 'getAvailability', 401, 'unauthorized');
  t.match(late.body.detail, /expired/);
  for (const path of ['/healthz', '/metrics', '/openapi.json'])
    t.equal((await call(url, 'GET', path)).status, 200, `${path} needs no token`);
  t.equal(shards.calls.length, 0, 'no shard was asked');
});

t.test('hold specific seats: 201 with Location; request id and derived key reach the shard', async (t) => {
  shards.answer = ({ command }) => heldResult(command.type === 'hold' ? [...command.seats] : []);
  const key = freshKey();
  const response = await call(url, 'POST', holdPath, {
    token: alice,
    key,
    body: { seats: ['A-1-1', 'A-1-2'] },
    headers: { 'x-request-id': 'trace-abc-123' },
  });
  expect(t, response, 'createHold', 201);
  t.equal(response.headers.get('location'), `${holdPath}/${response.body.holdId}`);
  t.equal(response.headers.get('x-request-id'), 'trace-abc-123');
  const last = shards.calls.at(-1)!;
  t.equal(last.requestId, 'trace-abc-123', 'request id propagated to the engine');
  t.same(last.command, {
    type: 'hold',
    key: keyDigest('alice', key),
    customer: 'alice',
    seats: ['A-1-1', 'A-1-2'],
    redecideRefusal: true, // the ingress stores no refusal, so the shard must not replay one either
  });
  t.equal(last.shard, 0);
});

t.test(
  'a shard that answers with a replay (the key’s first request was carried out, its answer lost) is a replay to the client',
  async (t) => {
    shards.answer = ({ command }) => ({ result: heldResult(command.type === 'hold' ? [...command.seats] : []), replayed: true });
    const replayed = await call(url, 'POST', holdPath, { token: alice, key: freshKey(), body: { seats: ['A-1-3'] } });
    expect(t, replayed, 'createHold', 201);
    t.equal(replayed.headers.get('idempotent-replayed'), 'true', 'Idempotent-Replayed, as for a replay from Redis');
    shards.answer = ({ command }) => heldResult(command.type === 'hold' ? [...command.seats] : []);
    const fresh = await call(url, 'POST', holdPath, { token: alice, key: freshKey(), body: { seats: ['A-1-4'] } });
    expect(t, fresh, 'createHold', 201);
    t.equal(fresh.headers.get('idempotent-replayed'), null, 'a decision of its own is no replay');
  },
);

t.test('best-available asks the section’s shards best rows first, strictly orphan-free first', async (t) => {
  // A new key cannot have been carried out anywhere: the shards are walked at once. (`probes`:
  // requests to replay what a shard holds under the key, made first only for a key left unknown.)
  const nothing: ShardResult = { ok: false, type: 'unavailable', seats: [], message: 'nothing decided' };
  const probes = () => shards.calls.filter((c) => c.command.replayOnly === true);
  const decided = () => shards.calls.filter((c) => c.command.replayOnly !== true);
  shards.calls.length = 0;
  shards.answer = ({ shard, command }) =>
    command.replayOnly === true
      ? nothing
      : shard === 0
        ? { ok: false, type: 'unavailable', seats: [], message: 'no 4 together' }
        : heldResult(['A-5-1', 'A-5-2', 'A-5-3', 'A-5-4']);
  const key = freshKey();
  expect(t, await post(holdPath, { key, body: { section: 'A', quantity: 4 } }), 'createHold', 201);
  t.same(probes(), [], 'a new key: no replay probe first (that is for a key left unknown: best-available-retry.test.ts)');
  t.same(
    decided().map((c) => [c.shard, c.command]),
    [0, 1].map((shard) => [
      shard,
      {
        type: 'hold-best',
        key: `${keyDigest('alice', key)}.strict`,
        customer: 'alice',
        section: 'A',
        quantity: 4,
        strictOrphans: true,
        redecideRefusal: true,
      },
    ]),
  );

  // No shard can avoid an orphan: the second pass lets the best rows leave one.
  shards.calls.length = 0;
  shards.answer = ({ command }) =>
    command.replayOnly === true
      ? nothing
      : command.type === 'hold-best' && command.strictOrphans
        ? { ok: false, type: 'unavailable', seats: [], message: 'only with an orphan' }
        : heldResult(['A-1-18', 'A-1-19']);
  const relaxedKey = freshKey();
  expect(t, await post(holdPath, { key: relaxedKey, body: { section: 'A', quantity: 2 } }), 'createHold', 201);
  t.same(
    decided().map((c) => [c.shard, c.command.type === 'hold-best' && c.command.strictOrphans === true]),
    [
      [0, true],
      [1, true],
      [0, false],
    ],
  );
  t.equal(decided()[2]!.command.key, keyDigest('alice', relaxedKey));

  shards.calls.length = 0;
  shards.answer = () => ({ ok: false, type: 'unavailable', seats: [], message: 'sold out' });
  expect(t, await post(holdPath, { body: { section: 'A', quantity: 4 } }), 'createHold', 409, 'seats-unavailable');
  t.equal(decided().length, 4, 'two passes over two shards');
});

t.test('GA pool hold goes to the pool’s shard', async (t) => {
  shards.calls.length = 0;
  shards.answer = () => ({
    ok: true,
    type: 'held',
    hold: { holdId: 'h_pool1', customer: 'alice', seats: [], pool: 'GA', quantity: 2, createdAt: now, expiresAt: now + 1000 },
  });
  const response = await post(holdPath, { body: { pool: 'GA', quantity: 2 } });
  expect(t, response, 'createHold', 201);
  t.equal(response.body.pool, 'GA');
  t.equal(shards.calls[0]!.shard, 1);
  t.equal(shards.calls[0]!.command.type, 'hold-pool');
});

t.test('bad input: each a precise 4xx, no shard asked', async (t) => {
  shards.calls.length = 0;
  const raw = (body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    call(url, 'POST', holdPath, { token: alice, key: freshKey(), body, headers });
  expect(t, await raw('{"seats": ["A-1-1"'), 'createHold', 400, 'malformed-json');
  expect(t, await raw('{"seats": "A-1-1"}'), 'createHold', 400, 'validation-failed');
  const unknownField = await raw('{"seats": ["A-1-1"], "vip": true}');
  expect(t, unknownField, 'createHold', 400, 'validation-failed');
  t.same(unknownField.body.errors, [{ pointer: '#/vip', detail: 'is not a known field' }]);
  const zero = await raw('{"section": "A", "quantity": 0}');
  expect(t, zero, 'createHold', 400, 'validation-failed');
  t.same(zero.body.errors, [{ pointer: '#/quantity', detail: 'must be ≥ 1' }]);
  expect(t, await raw('{"pool": "GA", "quantity": -1}'), 'createHold', 400, 'validation-failed');
  expect(t, await raw('', {}), 'createHold', 400, 'validation-failed');
  expect(t, await raw('seats=A-1-1', { 'content-type': 'application/x-www-form-urlencoded' }), 'createHold', 415, 'unsupported-media-type');
  expect(t, await raw(JSON.stringify({ seats: ['A-1-1'], pad: 'x'.repeat(20_000) })), 'createHold', 413, 'body-too-large');
  expect(t, await call(url, 'POST', holdPath, { token: alice, body: { seats: ['A-1-1'] } }), 'createHold', 400, 'idempotency-key-required');
  const badKey = await call(url, 'POST', holdPath, { token: alice, key: 'has spaces', body: { seats: ['A-1-1'] } });
  expect(t, badKey, 'createHold', 400, 'validation-failed');
  t.equal(badKey.body.errors[0].pointer, '#/header/Idempotency-Key');
  const unknownSeat = await post(holdPath, { body: { seats: ['A-1-1', 'A-9-1', 'Z-1-1'] } });
  expect(t, unknownSeat, 'createHold', 422, 'unknown-inventory');
  t.same(
    unknownSeat.body.errors.map((e: { pointer: string }) => e.pointer),
    ['#/seats/1', '#/seats/2'],
  );
  expect(t, await post(holdPath, { body: { seats: ['A-1-1', 'A-8-1'] } }), 'createHold', 422, 'seats-span-shards');
  expect(t, await post(holdPath, { body: { section: 'Q', quantity: 2 } }), 'createHold', 422, 'unknown-inventory');
  expect(t, await post(holdPath, { body: { pool: 'VIP', quantity: 2 } }), 'createHold', 422, 'unknown-inventory');
  expect(t, await post('/v1/events/no-such-event/holds', { body: { seats: ['A-1-1'] } }), 'createHold', 404, 'event-not-found');
  expect(t, await post('/v1/events/bad.event/holds', { body: { seats: ['A-1-1'] } }), 'createHold', 400, 'validation-failed');
  expect(t, await post(eventPath(spec, '/seats/A-99-1/reserve')), 'reserveSeat', 404, 'seat-not-found');
  expect(t, await post(eventPath(spec, '/seats/A-1-0/reserve')), 'reserveSeat', 400, 'validation-failed');
  expect(t, await post(eventPath(spec, '/seats/A-1-1/reserve'), { body: { seat: 'A-1-2' } }), 'reserveSeat', 400, 'validation-failed');
  t.equal(shards.calls.length, 0, 'nothing reached a shard');
});

t.test('every shard decision maps to its status', async (t) => {
  const cases: [ShardResult, number, string][] = [
    [{ ok: false, type: 'unavailable', seats: ['A-1-3'], message: 'taken' }, 409, 'seats-unavailable'],
    [{ ok: false, type: 'limit-exceeded', limit: 6, current: 5, requested: 2, message: 'limit' }, 422, 'limit-exceeded'],
    [{ ok: false, type: 'invalid', field: 'seats', message: 'no' }, 422, 'invalid-command'],
    [{ ok: false, type: 'idempotency-mismatch', message: 'other command' }, 422, 'idempotency-key-reused'],
  ];
  for (const [result, status, problem] of cases) {
    shards.answer = () => result;
    const response = await post(holdPath, { body: { seats: ['A-1-3', 'A-1-4'] } });
    expect(t, response, 'createHold', status, problem);
    if (result.type === 'unavailable') t.same(response.body.seats, ['A-1-3']);
    if (result.type === 'limit-exceeded') t.match(response.body, { limit: 6, current: 5, requested: 2 });
  }
});

t.test('confirm, release and reserve', async (t) => {
  shards.answer = ({ command }) => heldResult(command.type === 'hold' ? [...command.seats] : [], 'h_confirm_me');
  expect(t, await post(holdPath, { body: { seats: ['A-2-1'] } }), 'createHold', 201);
  const confirmPath = eventPath(spec, '/holds/h_confirm_me/confirm');

  shards.calls.length = 0;
  const foreign = await call(url, 'POST', confirmPath, { token: bob, key: freshKey() });
  expect(t, foreign, 'confirmHold', 404, 'hold-not-found');
  expect(t, await call(url, 'DELETE', eventPath(spec, '/holds/h_confirm_me'), { token: bob }), 'releaseHold', 404, 'hold-not-found');
  expect(t, await post(eventPath(spec, '/holds/h_nobody/confirm')), 'confirmHold', 404, 'hold-not-found');
  t.equal(shards.calls.length, 0, "another customer's hold is refused before any shard is asked");

  for (const [result, status, problem] of [
    [{ ok: false, type: 'hold-expired', holdId: 'h_confirm_me', message: 'expired' }, 409, 'hold-expired'],
    [{ ok: false, type: 'hold-confirmed', holdId: 'h_confirm_me', reservationId: 'r1', message: 'confirmed' }, 409, 'hold-confirmed'],
    [{ ok: false, type: 'hold-not-found', holdId: 'h_confirm_me', message: 'gone' }, 404, 'hold-not-found'],
  ] as [ShardResult, number, string][]) {
    shards.answer = () => result;
    expect(t, await post(confirmPath), 'confirmHold', status, problem);
  }
  shards.answer = () => confirmedResult('h_confirm_me', ['A-2-1']);
  const confirmed = await post(confirmPath);
  expect(t, confirmed, 'confirmHold', 201);
  t.equal(confirmed.headers.get('location'), `/v1/reservations/${confirmed.body.reservationId}`);
  t.equal(shards.calls.at(-1)!.command.type, 'confirm');
  t.equal(shards.calls.at(-1)!.command.redecideRefusal, true);

  shards.answer = () => ({ ok: true, type: 'released', holdId: 'h_confirm_me' });
  const released = await call(url, 'DELETE', eventPath(spec, '/holds/h_confirm_me'), { token: alice });
  expect(t, released, 'releaseHold', 204);
  const release = shards.calls.at(-1)!.command;
  t.same(release, {
    type: 'release',
    key: keyDigest('alice', 'release h_confirm_me'),
    customer: 'alice',
    holdId: 'h_confirm_me',
    redecideRefusal: true,
  });
  shards.answer = () => ({ ok: false, type: 'hold-expired', holdId: 'h_confirm_me', message: 'expired' });
  expect(t, await call(url, 'DELETE', eventPath(spec, '/holds/h_confirm_me'), { token: alice }), 'releaseHold', 204);
  shards.answer = () => ({ ok: false, type: 'hold-confirmed', holdId: 'h_confirm_me', reservationId: 'r', message: 'sold' });
  expect(t, await call(url, 'DELETE', eventPath(spec, '/holds/h_confirm_me'), { token: alice }), 'releaseHold', 409, 'hold-confirmed');
  shards.answer = () => ({ ok: false, type: 'invalid', field: 'holdId', message: 'not a hold id' });
  expect(t, await call(url, 'DELETE', eventPath(spec, '/holds/h_confirm_me'), { token: alice }), 'releaseHold', 422, 'invalid-command');
  for (const command of shards.calls.slice(-4).map((c) => c.command))
    t.equal(command.redecideRefusal, true, `${command.type}: the shard decides afresh after a refusal`);

  shards.answer = ({ command }) => confirmedResult('h_one_shot', [command.type === 'reserve' ? command.seat : '']);
  const reserved = await post(eventPath(spec, '/seats/A-7-3/reserve'));
  expect(t, reserved, 'reserveSeat', 201);
  t.same(reserved.body.seats, ['A-7-3']);
  t.equal(shards.calls.at(-1)!.command.redecideRefusal, true);
  t.equal(shards.calls.at(-1)!.shard, 1);
  shards.answer = () => ({ ok: false, type: 'unavailable', seats: ['A-7-4'], message: 'held' });
  expect(t, await post(eventPath(spec, '/seats/A-7-4/reserve')), 'reserveSeat', 409, 'seats-unavailable');
});

t.test('seats a shard reported sold are refused without asking it again', async (t) => {
  shards.answer = ({ command }) => confirmedResult('h_sold_once', [command.type === 'reserve' ? command.seat : '']);
  const winnerKey = freshKey();
  const winner = await post(eventPath(spec, '/seats/A-8-2/reserve'), { key: winnerKey });
  expect(t, winner, 'reserveSeat', 201);
  // The winner's reservation taught the ingress that A-8-2 is sold.
  shards.answer = () => {
    throw new Error('no shard should be asked about A-8-2');
  };
  const asked = shards.calls.length;
  const refused = await post(eventPath(spec, '/seats/A-8-2/reserve'), { token: bob });
  expect(t, refused, 'reserveSeat', 409, 'seats-unavailable');
  t.same(refused.body.seats, ['A-8-2']);
  const hold = await post(holdPath, { token: bob, body: { seats: ['A-8-2', 'A-8-3'] } });
  expect(t, hold, 'createHold', 409, 'seats-unavailable');
  t.same(hold.body.seats, ['A-8-2'], 'names the seat known to be sold');
  const replay = await post(eventPath(spec, '/seats/A-8-2/reserve'), { key: winnerKey });
  expect(t, replay, 'reserveSeat', 201);
  t.same(replay.body, winner.body, "the winner's retry still gets its reservation");
  t.equal(replay.headers.get('idempotent-replayed'), 'true');
  expect(t, await post(holdPath, { key: winnerKey, body: { seats: ['A-8-2'] } }), 'createHold', 422, 'idempotency-key-reused');
  t.equal(shards.calls.length, asked, 'no shard was asked for a seat known to be sold');

  // A refusal naming a seat sold, and to whom (sold through another replica), teaches the same.
  shards.answer = () => ({
    ok: false,
    type: 'unavailable',
    seats: ['A-8-4'],
    sold: ['A-8-4'],
    soldTo: ['carol'],
    message: 'seat A-8-4 is not available',
  });
  expect(t, await post(eventPath(spec, '/seats/A-8-4/reserve'), { token: bob }), 'reserveSeat', 409, 'seats-unavailable');
  expect(t, await post(eventPath(spec, '/seats/A-8-4/reserve'), { token: bob }), 'reserveSeat', 409, 'seats-unavailable');
  t.equal(shards.calls.length, asked + 1, 'asked once about A-8-4');
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, /sentinel_ingress_known_sold_refusals_total 3\b/);

  // A seat that is only held may come free again: it is never remembered.
  shards.answer = () => ({ ok: false, type: 'unavailable', seats: ['A-8-5'], message: 'seat A-8-5 is not available' });
  expect(t, await post(eventPath(spec, '/seats/A-8-5/reserve')), 'reserveSeat', 409, 'seats-unavailable');
  shards.answer = ({ command }) => confirmedResult('h_freed', [command.type === 'reserve' ? command.seat : '']);
  expect(t, await post(eventPath(spec, '/seats/A-8-5/reserve')), 'reserveSeat', 201);
  t.equal(shards.calls.length, asked + 3, 'held seats are always asked about');
});

t.test('a hold created through another replica is found in Postgres', async (t) => {
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at)
     VALUES ($2, $1, 1, 'alice', '{A-6-1}', 1, 'live', now(), now() + interval '1 minute')`,
    [spec.eventId, `h_elsewhere_${spec.eventId}`],
  );
  shards.calls.length = 0;
  shards.answer = () => confirmedResult(`h_elsewhere_${spec.eventId}`, ['A-6-1']);
  expect(t, await post(eventPath(spec, `/holds/h_elsewhere_${spec.eventId}/confirm`)), 'confirmHold', 201);
  t.equal(shards.calls[0]!.shard, 1);
  expect(
    t,
    await call(url, 'POST', eventPath(spec, `/holds/h_elsewhere_${spec.eventId}/confirm`), { token: bob, key: freshKey() }),
    'confirmHold',
    404,
    'hold-not-found',
  );
});

t.test(
  'a hold the shard no longer remembers (past its memory of ended holds) is answered from how Postgres recorded its end',
  async (t) => {
    const hold = (state: string) => `h_forgotten_${state}_${spec.eventId}`;
    for (const state of ['expired', 'released', 'confirmed'])
      await pool.query(
        `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at, ended_at, reservation_id)
       VALUES ($2, $1, 1, 'alice', '{A-6-2}', 1, $3, now() - interval '2 days', now() - interval '2 days', now() - interval '2 days', $4)`,
        [spec.eventId, hold(state), state, state === 'confirmed' ? `r_${hold(state)}` : null],
      );
    shards.answer = ({ command }) => ({
      ok: false,
      type: 'hold-not-found',
      holdId: (command as { holdId: string }).holdId,
      message: 'no such hold',
    });
    for (const state of ['expired', 'released']) {
      const path = eventPath(spec, `/holds/${hold(state)}`);
      t.equal((await call(url, 'DELETE', path, { token: alice })).status, 204, `DELETE of a hold ${state} long ago: 204, as the API says`);
      expect(t, await post(`${path}/confirm`), 'confirmHold', 409, 'hold-expired');
    }
    const confirmed = await post(eventPath(spec, `/holds/${hold('confirmed')}/confirm`));
    expect(t, confirmed, 'confirmHold', 409, 'hold-confirmed');
    t.equal(confirmed.body?.reservationId, `r_${hold('confirmed')}`, 'naming its reservation');
    // Another customer's is still a 404: how it ended is not theirs to learn.
    expect(
      t,
      await call(url, 'DELETE', eventPath(spec, `/holds/${hold('expired')}`), { token: bob }),
      'releaseHold',
      404,
      'hold-not-found',
    );
  },
);

t.test('idempotency: replay, mismatch, in flight, conflicts not cached', async (t) => {
  shards.calls.length = 0;
  shards.answer = ({ command }) => heldResult(command.type === 'hold' ? [...command.seats] : []);
  const key = freshKey();
  const first = await post(holdPath, { key, body: { seats: ['A-3-1'] } });
  const again = await post(holdPath, { key, body: { seats: ['A-3-1'] } });
  expect(t, again, 'createHold', 201);
  t.same(again.body, first.body, 'the first response, replayed');
  t.equal(again.headers.get('location'), first.headers.get('location'));
  t.equal(again.headers.get('idempotent-replayed'), 'true');
  t.equal(shards.calls.length, 1, 'the shard was asked once');
  expect(t, await post(holdPath, { key, body: { seats: ['A-3-2'] } }), 'createHold', 422, 'idempotency-key-reused');
  expect(t, await post(eventPath(spec, '/seats/A-3-1/reserve'), { key }), 'reserveSeat', 422, 'idempotency-key-reused');
  t.equal((await call(url, 'POST', holdPath, { token: bob, key, body: { seats: ['A-3-3'] } })).status, 201, "bob's key space is his own");

  const loserKey = freshKey();
  shards.answer = () => ({ ok: false, type: 'unavailable', seats: ['A-3-5'], message: 'taken' });
  expect(t, await post(holdPath, { key: loserKey, body: { seats: ['A-3-5'] } }), 'createHold', 409, 'seats-unavailable');
  shards.answer = ({ command }) => heldResult(command.type === 'hold' ? [...command.seats] : []);
  expect(t, await post(holdPath, { key: loserKey, body: { seats: ['A-3-5'] } }), 'createHold', 201);

  const slowKey = freshKey();
  shards.answer = ({ command }) => {
    if (command.type !== 'hold') return 'silence';
    return 'silence';
  };
  const slow = post(holdPath, { key: slowKey, body: { seats: ['A-3-9'] } });
  await new Promise((resolve) => setTimeout(resolve, 150));
  const busy = await post(holdPath, { key: slowKey, body: { seats: ['A-3-9'] } });
  expect(t, busy, 'createHold', 409, 'idempotency-key-in-use');
  t.equal(busy.headers.get('retry-after'), '1');
  const timedOut = await slow;
  expect(t, timedOut, 'createHold', 503, 'shard-unavailable');
  shards.answer = ({ command }) => heldResult(command.type === 'hold' ? [...command.seats] : []);
  expect(t, await post(holdPath, { key: slowKey, body: { seats: ['A-3-9'] } }), 'createHold', 201, undefined);
});

t.test('unavailable shards: 503 with Retry-After within the deadline, never a hang or a 500', async (t) => {
  shards.answer = () => 'silence';
  let started = Date.now();
  const silent = await post(holdPath, { body: { seats: ['A-4-1'] } });
  expect(t, silent, 'createHold', 503, 'shard-unavailable');
  t.equal(silent.headers.get('retry-after'), '1');
  t.ok(Date.now() - started < 2500, 'answered within the deadline (1.5 s) plus slack');
  shards.answer = () => ({ ok: false, type: 'not-serving', state: 'draining', retryable: true, message: 'draining' });
  started = Date.now();
  expect(t, await post(holdPath, { body: { seats: ['A-4-1'] } }), 'createHold', 503, 'shard-unavailable');
  shards.answer = () => ({ error: { code: 'fenced', message: 'epoch moved', retryable: true } });
  expect(t, await post(holdPath, { body: { seats: ['A-4-1'] } }), 'createHold', 503, 'shard-unavailable');
  const unowned = await provisionTestEvent(pool, { shardCount: 1 });
  const noOwner = await post(`/v1/events/${unowned.eventId}/seats/A-4-2/reserve`);
  expect(t, noOwner, 'reserveSeat', 503, 'shard-unavailable');
});

t.test('unexpected failures: 500 with the correlation id, no internals', async (t) => {
  shards.answer = () => ({
    error: { code: 'decode_failed', message: 'TypeError at Object.<anonymous> (/src/engine/x.ts:1:1)', retryable: false },
  });
  const failed = await post(holdPath, { body: { seats: ['A-4-3'] }, headers: { 'x-request-id': 'corr-500' } });
  expect(t, failed, 'createHold', 500, 'internal-error');
  t.equal(failed.body.requestId, 'corr-500');
  t.notMatch(failed.text, /TypeError|\/src\/|at Object/);
  shards.answer = () => ({ ok: true, type: 'released', holdId: 'x' }); // a nonsense answer to a hold
  expect(t, await post(holdPath, { body: { seats: ['A-4-3'] } }), 'createHold', 500, 'internal-error');
});

t.test('admission control: over the event rate → 429 + Retry-After before any shard', async (t) => {
  // One request a second, burst 1: of ten at once exactly one is admitted, however slow the machine.
  const slowSale = await provisionTestEvent(pool, { admissionRate: 1, shardCount: 1 });
  const fake = new FakeShards(harness.nc, slowSale.eventId, 1);
  t.teardown(() => fake.close());
  fake.answer = ({ command }) => confirmedResult('h_admitted', [command.type === 'reserve' ? command.seat : '']);
  const responses = await Promise.all(
    Array.from({ length: 10 }, (_, i) => post(`/v1/events/${slowSale.eventId}/seats/A-1-${i + 1}/reserve`)),
  );
  const limited = responses.filter((r) => r.status === 429);
  t.equal(responses.length - limited.length, 1, 'the burst is admitted');
  t.equal(limited.length, 9);
  for (const r of limited) {
    expect(t, r, 'reserveSeat', 429, 'too-many-requests');
    const wait = Number(r.headers.get('retry-after'));
    t.ok(wait >= 1 && wait <= 10, `Retry-After ${wait}: when a slot frees up`);
  }
  t.equal(fake.calls.length, 1, 'refused requests never reached a shard');
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, new RegExp(`sentinel_ingress_admission_rejections_total\\{event="${slowSale.eventId}"\\} 9`));
});

t.test('sale window: not yet open, closed', async (t) => {
  const later = await provisionTestEvent(pool, {
    saleOpensAt: new Date(Date.now() + 3_600_000),
    saleClosesAt: new Date(Date.now() + 7_200_000),
  });
  const early = await post(`/v1/events/${later.eventId}/seats/A-1-1/reserve`);
  expect(t, early, 'reserveSeat', 409, 'sale-not-open');
  t.ok(early.body.opensAt);
});

t.test('reads: availability, seat map, reservation (own only)', async (t) => {
  const availability = await call(url, 'GET', eventPath(spec, '/availability'), { token: alice });
  expect(t, availability, 'getAvailability', 200);
  t.match(availability.body, {
    eventId: spec.eventId,
    sections: [{ section: 'A', total: 160, available: 160 }],
    pools: [{ pool: 'GA', total: 50, available: 50 }],
  });
  const seatMap = await call(url, 'GET', eventPath(spec, '/seats?section=A'), { token: alice });
  expect(t, seatMap, 'getSeatMap', 200);
  t.equal(seatMap.body.rows.length, 8);
  t.same(seatMap.body.rows[0].seats[0], { seat: 'A-1-1', number: 1, state: 'available' });
  expect(t, await call(url, 'GET', eventPath(spec, '/seats?section=Q'), { token: alice }), 'getSeatMap', 404, 'section-not-found');
  expect(t, await call(url, 'GET', eventPath(spec, '/seats'), { token: alice }), 'getSeatMap', 400, 'validation-failed');
  expect(t, await call(url, 'GET', '/v1/events/nope/availability', { token: alice }), 'getAvailability', 404, 'event-not-found');
  // HEAD on a GET operation: its status and headers, no body — authenticated and validated alike.
  const head = (path: string, token?: string) =>
    fetch(`${url}${path}`, { method: 'HEAD', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const headed = await head(eventPath(spec, '/seats?section=A'), alice);
  t.equal(headed.status, 200);
  t.match(headed.headers.get('content-type'), /^application\/json/);
  t.equal(await headed.text(), '', 'no body');
  t.equal((await head(eventPath(spec, '/seats?section=Q'), alice)).status, 404);
  t.equal((await head(eventPath(spec, '/seats?section=A'))).status, 401);

  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at, reservation_id)
     VALUES ($2, $1, 0, 'alice', '{A-1-20}', 1, 'confirmed', now(), now() + interval '1 minute', $3)`,
    [spec.eventId, `h_for_res_${spec.eventId}`, `r_read_me_${spec.eventId}`],
  );
  await pool.query(
    `INSERT INTO reservations (reservation_id, event_id, hold_id, shard, customer, seats, quantity, confirmed_at)
     VALUES ($3, $1, $2, 0, 'alice', '{A-1-20}', 1, now())`,
    [spec.eventId, `h_for_res_${spec.eventId}`, `r_read_me_${spec.eventId}`],
  );
  const mine = await call(url, 'GET', `/v1/reservations/r_read_me_${spec.eventId}`, { token: alice });
  expect(t, mine, 'getReservation', 200);
  t.match(mine.body, {
    reservationId: `r_read_me_${spec.eventId}`,
    holdId: `h_for_res_${spec.eventId}`,
    seats: ['A-1-20'],
    quantity: 1,
    eventId: spec.eventId,
  });
  const theirs = await call(url, 'GET', `/v1/reservations/r_read_me_${spec.eventId}`, { token: bob });
  expect(t, theirs, 'getReservation', 404, 'reservation-not-found');
  const none = await call(url, 'GET', '/v1/reservations/r_nothing', { token: bob });
  t.same(
    { ...theirs.body, requestId: '', detail: '' },
    { ...none.body, requestId: '', detail: '' },
    "another's reservation looks exactly like none",
  );
});

t.test('unknown routes, wrong methods, operations endpoints', async (t) => {
  const missing = await call(url, 'GET', '/v1/nothing-here', { token: alice });
  t.equal(missing.status, 404);
  t.equal(missing.body.type, PROBLEM_BASE + 'not-found');
  const wrong = await call(url, 'PUT', holdPath, { token: alice });
  expect(t, wrong, 'createHold', 405, 'method-not-allowed');
  t.equal(wrong.headers.get('allow'), 'POST');
  const wrongOnHold = await call(url, 'PATCH', eventPath(spec, '/holds/h_x'), { token: alice });
  expect(t, wrongOnHold, 'getHold', 405, 'method-not-allowed');
  t.equal(wrongOnHold.headers.get('allow'), 'HEAD, GET, DELETE');
  expect(t, await call(url, 'POST', '/metrics'), 'getMetrics', 405, 'method-not-allowed');
  expect(t, await call(url, 'GET', '/healthz'), 'getHealth', 200);
  const ready = await call(url, 'GET', '/readyz');
  expect(t, ready, 'getReadiness', 200);
  t.same(ready.body, { status: 'ok', checks: { redis: 'ok', nats: 'ok', postgres: 'ok' } });
  expect(t, await call(url, 'GET', '/metrics'), 'getMetrics', 200);
  const doc = await call(url, 'GET', '/openapi.json');
  t.same(doc.body, api.document, '/openapi.json serves the document the app validates with');
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, /sentinel_ingress_http_requests_total\{method="POST",route="\/v1\/events\/\{event\}\/holds",status="201"\} \d+/);
  t.match(
    metrics,
    /sentinel_ingress_http_request_duration_seconds_bucket\{le="0.1",method="POST",route="\/v1\/events\/\{event\}\/holds"\} \d+/,
  );
  t.match(metrics, /sentinel_ingress_shard_request_duration_seconds_count\{command="hold",outcome="held"\} \d+/);
  t.match(metrics, /sentinel_ingress_idempotency_total\{outcome="replay"\} \d+/);
  t.notMatch(metrics, /route="\/v1\/events\/ev-/, 'routes are labelled by template, never by raw URL');
});

t.test("dependencies down: 503s, and still ready (the dependencies are every replica's), their state reported", async (t) => {
  const deadRedis = createRedis({ url: 'redis://127.0.0.1:1', log: silentLogger });
  deadRedis.connect().catch(() => undefined);
  const deadPg = createPgPool({ url: 'postgres://x:y@127.0.0.1:1/none', max: 1, log: silentLogger });
  const broken = await startHarness(deadPg, { redis: deadRedis });
  t.teardown(async () => {
    await broken.close();
    deadRedis.disconnect();
    await deadPg.end();
  });
  const noDb = await call(broken.url, 'GET', eventPath(spec, '/availability'), { token: alice });
  expect(t, noDb, 'getAvailability', 503, 'dependency-unavailable');
  t.equal(noDb.headers.get('retry-after'), '1');
  const degraded = await call(broken.url, 'GET', '/readyz');
  expect(t, degraded, 'getReadiness', 200);
  t.equal(degraded.body.status, 'degraded');
  t.equal(degraded.body.checks.nats, 'ok');
  t.match(degraded.body.checks.redis, /^failed: /);
  t.match(degraded.body.checks.postgres, /^failed: /);
  // /readyz needs no token: it names no host, port, address or driver message.
  t.notMatch(degraded.text, /127\.0\.0\.1|:1\b|ECONNREFUSED|connect|password|authentication/i);
  const metrics = await (await fetch(`${broken.url}/metrics`)).text();
  t.match(metrics, /sentinel_ingress_dependency_up\{dependency="redis"\} 0/);
  t.match(metrics, /sentinel_ingress_dependency_up\{dependency="nats"\} 1/);

  const noRedis = await startHarness(pool, { redis: deadRedis });
  t.teardown(() => noRedis.close());
  const refused = await call(noRedis.url, 'POST', holdPath, { token: alice, key: 'k', body: { seats: ['A-1-1'] } });
  expect(t, refused, 'createHold', 503, 'dependency-unavailable');
});

t.test('graceful shutdown: in-flight requests finish, readiness fails first', async (t) => {
  const h = await startHarness(pool);
  shards.answer = () => 'silence';
  let release: () => void = () => undefined;
  const answerNow = new Promise<void>((resolve) => (release = resolve));
  let received: () => void = () => undefined;
  const asked = new Promise<void>((resolve) => (received = resolve));
  // A shard that answers only when told: the response must still arrive although close() began.
  const sub = h.nc.subscribe(`sentinel.${spec.eventId}.0`);
  void (async () => {
    for await (const m of sub) {
      received();
      await answerNow;
      m.respond(encode({ replies: [[0, { result: heldResult(['A-1-9']) }]] }));
    }
  })();
  const inFlight = call(h.url, 'POST', holdPath, { token: alice, key: freshKey(), body: { seats: ['A-1-9'] } });
  await asked; // the request is in flight: it reached the shard
  const closeStarted = Date.now();
  const closing = h.running.close({ drainDelayMs: 300, graceMs: 5000 });
  const ready = await call(h.url, 'GET', '/readyz');
  t.equal(ready.status, 503, 'not ready while draining');
  t.equal(ready.body.status, 'shutting-down');
  t.equal(ready.headers.get('connection'), 'close', 'a response while closing closes its connection');
  release();
  t.equal((await inFlight).status, 201, 'the request in flight completed');
  await closing;
  // The in-flight request's keep-alive connection closed after its answer, not at the grace period.
  // (Node closes a connection whose response is written after the listener closed; the header above
  // is what the close sets from its start, during the drain delay.)
  t.ok(Date.now() - closeStarted < 2500, `the close ended once the request in flight had its answer (${Date.now() - closeStarted} ms)`);
  await t.rejects(fetch(`${h.url}/healthz`), 'no longer accepting');
  sub.unsubscribe();
  await h.nc.close();
  h.redis.disconnect();
});

t.test('a NATS connection closed for good fails /healthz (the liveness probe restarts the replica), not /readyz', async (t) => {
  const h = await startHarness(pool);
  t.teardown(() => h.close());
  expect(t, await call(h.url, 'GET', '/healthz'), 'getHealth', 200);
  // As nats.js closes it when it gives up (the same authentication error twice, say): for good.
  await h.nc.close();
  const health = await call(h.url, 'GET', '/healthz');
  expect(t, health, 'getHealth', 503);
  t.same(health.body, { status: 'failed', checks: { nats: 'failed: closed' } });
  await new Promise((resolve) => setTimeout(resolve, READINESS_CACHE_MS)); // the checks made at the start are stale
  const ready = await call(h.url, 'GET', '/readyz');
  expect(t, ready, 'getReadiness', 200);
  t.equal(ready.body.status, 'degraded');
  t.equal(ready.body.checks.nats, 'failed: error');
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  t.match(metrics, /sentinel_ingress_dependency_up\{dependency="nats"\} 0/);
});

t.test('graceful shutdown: NATS drained while the listener still answers leaves /healthz passing', async (t) => {
  const h = await startHarness(pool);
  t.teardown(() => h.close());
  t.ok(h.app.readiness.watching, 'the dependency checks run on a timer');
  const closing = h.running.close({ drainDelayMs: 1000, graceMs: 1000 });
  t.notOk(h.app.readiness.watching, 'the timer stops when the close begins');
  await closeNats(h.nc);
  t.ok(h.nc.isClosed());
  const health = await call(h.url, 'GET', '/healthz');
  expect(t, health, 'getHealth', 200);
  t.same(health.body, { status: 'shutting-down' }, 'the process drains NATS itself: no restart for it');
  expect(t, await call(h.url, 'GET', '/readyz'), 'getReadiness', 503);
  await closing;
});

t.test('idempotency: equivalent URLs of one request are the same request', async (t) => {
  shards.calls.length = 0;
  shards.answer = ({ command }) => confirmedResult('h_equivalent', [command.type === 'reserve' ? command.seat : '']);
  const key = freshKey();
  const first = await post(eventPath(spec, '/seats/A-5-9/reserve'), { key });
  expect(t, first, 'reserveSeat', 201);
  // A trailing slash, a %-encoded seat id, an upper-case path: the router serves each as the same
  // operation with the same parameters, so each is a retry of the first request.
  for (const path of [
    eventPath(spec, '/seats/A-5-9/reserve/'),
    eventPath(spec, '/seats/A%2D5%2D9/reserve'),
    `/V1/EVENTS/${spec.eventId}/SEATS/A-5-9/RESERVE`,
  ]) {
    const retry = await post(path, { key, body: {} });
    expect(t, retry, 'reserveSeat', 201);
    t.same(retry.body, first.body, `${path}: the first response, replayed`);
    t.equal(retry.headers.get('idempotent-replayed'), 'true');
  }
  t.equal(shards.calls.length, 1, 'the shard was asked once');
  expect(t, await post(eventPath(spec, '/seats/A-5-10/reserve'), { key }), 'reserveSeat', 422, 'idempotency-key-reused');
  shards.answer = ({ command }) => heldResult(command.type === 'hold' ? [...command.seats] : []);
  const hold = freshKey();
  expect(t, await post(holdPath, { key: hold, body: { seats: ['A-5-11'] } }), 'createHold', 201);
  expect(t, await post(`${holdPath}/`, { key: hold, body: { seats: ['A-5-11'] } }), 'createHold', 201);
  expect(t, await post(holdPath, { key: hold, body: { seats: ['A-5-12'] } }), 'createHold', 422, 'idempotency-key-reused');
});

t.test('sale closed: a key answered before the close is still answered; fresh requests never reach a shard', async (t) => {
  const closing = await provisionTestEvent(pool, { shardCount: 1, saleClosesAt: new Date(Date.now() + 1500) });
  const fake = new FakeShards(harness.nc, closing.eventId, 1);
  t.teardown(() => fake.close());
  fake.answer = ({ command }) => confirmedResult('h_before_close', [command.type === 'reserve' ? command.seat : '']);
  const path = `/v1/events/${closing.eventId}/seats/A-1-1/reserve`;
  const key = freshKey();
  const won = await post(path, { key });
  expect(t, won, 'reserveSeat', 201);
  // Another request is in flight at the close (its claim made just before it).
  const slowKey = freshKey();
  const claimed = await new CommandGate(harness.redis, 60).begin({
    eventId: closing.eventId,
    customer: 'alice',
    idempotencyKey: slowKey,
    fingerprint: requestFingerprint('POST', canonicalPath('/v1/events/{event}/holds', { event: closing.eventId }), { seats: ['A-1-2'] }),
    admission: undefined,
    inFlightTtlMs: 5000,
  });
  t.equal(claimed.kind, 'claimed');
  await waitFor('the sale to close', () => Date.now() > closing.saleClosesAt.getTime() + 50, 5000, 50);
  const asked = fake.calls.length;

  const replay = await post(path, { key });
  expect(t, replay, 'reserveSeat', 201);
  t.same(replay.body, won.body, 'the client whose 201 was lost learns it has a reservation');
  t.equal(replay.headers.get('idempotent-replayed'), 'true');
  expect(t, await post(`/v1/events/${closing.eventId}/seats/A-1-3/reserve`, { key }), 'reserveSeat', 422, 'idempotency-key-reused');
  const busy = await post(`/v1/events/${closing.eventId}/holds`, { key: slowKey, body: { seats: ['A-1-2'] } });
  expect(t, busy, 'createHold', 409, 'idempotency-key-in-use');
  t.ok(busy.headers.get('retry-after'));
  expect(t, await post(path), 'reserveSeat', 409, 'sale-not-open');
  expect(t, await post(path, { token: bob, key }), 'reserveSeat', 409, 'sale-not-open');
  expect(t, await post(`/v1/events/${closing.eventId}/holds`, { body: { seats: ['A-1-4'] } }), 'createHold', 409, 'sale-not-open');
  // DELETE after the close: a hold released already (the retry of a DELETE whose first attempt got
  // no answer before the close, and released it) is what DELETE asks for; any other is not.
  for (const [holdId, customer, state] of [
    ['h_gone', 'alice', 'released'],
    ['h_live', 'alice', 'live'],
    ['h_bobs', 'bob', 'released'],
  ] as const) {
    await pool.query(
      `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at)
       VALUES ($1, $2, 0, $3, '{A-1-5}', 1, $4, now(), now() + interval '1 minute')`,
      [`${holdId}_${closing.eventId}`, closing.eventId, customer, state],
    );
  }
  const release = (holdId: string) =>
    call(url, 'DELETE', `/v1/events/${closing.eventId}/holds/${holdId}_${closing.eventId}`, { token: alice });
  expect(t, await release('h_gone'), 'releaseHold', 204);
  expect(t, await release('h_live'), 'releaseHold', 409, 'sale-not-open');
  expect(t, await release('h_bobs'), 'releaseHold', 409, 'sale-not-open');
  expect(t, await release('h_unknown'), 'releaseHold', 409, 'sale-not-open');
  t.equal(fake.calls.length, asked, 'no shard was asked after the close');
});

t.test('sale closed: a key whose request got no answer is answered from what its shard committed', async (t) => {
  // Three requests reach the shards just before the close and get no answer in time (503): their
  // keys are unknown. The reserve was carried out — its commit outlasted the deadline — and so was
  // the best-available hold, on the second shard of its section; the hold of named seats was not.
  // The engine no longer serves the shards of a closed sale; their records are in Postgres.
  const closing = await provisionTestEvent(pool, { shardCount: 2, saleClosesAt: new Date(Date.now() + 4000) });
  const fake = new FakeShards(harness.nc, closing.eventId, 2);
  t.teardown(() => fake.close());
  const reservePath = `/v1/events/${closing.eventId}/seats/A-1-1/reserve`;
  const holdsPath = `/v1/events/${closing.eventId}/holds`;
  const [reserveKey, holdKey, bestKey] = [freshKey(), freshKey(), freshKey()];
  const best = { section: 'A', quantity: 2 };
  fake.answer = () => 'silence';
  const lost = await Promise.all([
    post(reservePath, { key: reserveKey }),
    post(holdsPath, { key: holdKey, body: { seats: ['A-1-2'] } }),
    post(holdsPath, { key: bestKey, body: best }),
  ]);
  for (const [response, operation] of [
    [lost[0], 'reserveSeat'],
    [lost[1], 'createHold'],
    [lost[2], 'createHold'],
  ] as const)
    expect(t, response, operation, 503, 'shard-unavailable');
  const reserveCall = fake.calls.find((c) => c.command.type === 'reserve')!;
  t.equal(reserveCall.command.key, keyDigest('alice', reserveKey));
  t.same(
    [...new Set(fake.calls.filter((c) => c.command.type === 'hold-best').map((c) => c.shard))],
    [0],
    'the walk of section A (shards 0 and 1) stopped at the first shard, which did not answer',
  );
  const record = (shard: number, command: ShardCommand, result: ShardResult, ageMs = 0) =>
    pool.query(
      `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, now() - make_interval(secs => $7))
       ON CONFLICT (event_id, shard, key, customer)
       DO UPDATE SET fingerprint = excluded.fingerprint, result = excluded.result, created_at = excluded.created_at`,
      [closing.eventId, shard, command.key, command.customer, fingerprintOf(command), JSON.stringify(result), ageMs / 1000],
    );
  await record(reserveCall.shard, reserveCall.command, confirmedResult('h_late', ['A-1-1']));
  // Records that must not be taken for it: another customer's under the same key (sorted first),
  // and another command's under the hold's key.
  await record(reserveCall.shard, { ...reserveCall.command, customer: 'aaron' }, confirmedResult('h_aaron', ['A-1-1']));
  const holdCommand = { type: 'hold', key: keyDigest('alice', holdKey), customer: 'alice', seats: ['A-1-3'] } as const;
  await record(reserveCall.shard, holdCommand, heldResult(['A-1-3']));
  // The best-available hold, made by shard 1 in the strict pass (under its strict-pass key).
  const strict = {
    type: 'hold-best',
    key: strictPassKey(keyDigest('alice', bestKey)),
    customer: 'alice',
    ...best,
    strictOrphans: true,
  } as const;
  await record(1, strict, heldResult(['A-5-1', 'A-5-2'], 'h_best'));
  await waitFor('the sale to close', () => Date.now() > closing.saleClosesAt.getTime() + 50, 8000, 50);
  const asked = fake.calls.length;

  const retry = await post(reservePath, { key: reserveKey });
  expect(t, retry, 'reserveSeat', 201);
  t.match(retry.body, { reservationId: 'r_h_late', seats: ['A-1-1'] }, 'the buyer learns, after the close, that the reserve was done');
  t.equal(retry.headers.get('idempotent-replayed'), 'true');
  const again = await post(reservePath, { key: reserveKey });
  expect(t, again, 'reserveSeat', 201);
  t.same(again.body, retry.body, 'and again on every retry');
  const bestRetry = await post(holdsPath, { key: bestKey, body: best });
  expect(t, bestRetry, 'createHold', 201);
  t.match(bestRetry.body, { holdId: 'h_best', seats: ['A-5-1', 'A-5-2'] }, 'a best-available hold, found under its strict-pass key');

  // Nothing committed under the hold's key yet — but a commit under way at the close may still
  // land (HARNESS_SETTINGS.closeSettleMs): not known yet, not refused.
  const pending = await post(holdsPath, { key: holdKey, body: { seats: ['A-1-2'] } });
  expect(t, pending, 'createHold', 503, 'shard-unavailable');
  const retryAfter = Number(pending.headers.get('retry-after'));
  t.ok(retryAfter >= 1 && retryAfter <= 3, `Retry-After ${retryAfter} s: the rest of the settling time`);
  await waitFor(
    'the settling time to pass',
    () => Date.now() > closing.saleClosesAt.getTime() + HARNESS_SETTINGS.closeSettleMs + 50,
    8000,
    50,
  );
  const refused = await post(holdsPath, { key: holdKey, body: { seats: ['A-1-2'] } });
  expect(t, refused, 'createHold', 409, 'sale-not-open');
  t.equal(
    await harness.redis.hget(redisKeys.idempotency(closing.eventId, keyDigest('alice', holdKey)), 's'),
    'u',
    'the key stays unknown: a later retry looks again',
  );
  const landed = { ...holdCommand, seats: ['A-1-2'] };
  await record(reserveCall.shard, landed, heldResult(['A-1-2'], 'h_landed'), 3_600_000);
  expect(t, await post(holdsPath, { key: holdKey, body: { seats: ['A-1-2'] } }), 'createHold', 409, 'sale-not-open');
  await record(reserveCall.shard, landed, heldResult(['A-1-2'], 'h_landed'));
  const found = await post(holdsPath, { key: holdKey, body: { seats: ['A-1-2'] } });
  expect(t, found, 'createHold', 201);
  t.match(found.body, { holdId: 'h_landed' }, 'a later retry finds it — within the idempotency window, as a shard would');
  expect(t, await post(reservePath, { key: freshKey() }), 'reserveSeat', 409, 'sale-not-open');
  t.equal(fake.calls.length, asked, 'no shard was asked after the close');
});

t.test('GET a hold (its Location): the caller’s own, from committed state; others’ and unknown ones are 404', async (t) => {
  const holdId = `h_read_${spec.eventId}`;
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at)
     VALUES ($2, $1, 0, 'alice', '{A-2-9,A-2-10}', 2, 'live', now(), now() + interval '1 minute')`,
    [spec.eventId, holdId],
  );
  const path = eventPath(spec, `/holds/${holdId}`);
  const live = await call(url, 'GET', path, { token: alice });
  expect(t, live, 'getHold', 200);
  t.match(live.body, { holdId, eventId: spec.eventId, seats: ['A-2-9', 'A-2-10'], quantity: 2, state: 'live' });
  t.notOk('reservationId' in live.body);
  t.notOk('customer' in live.body, 'the owner is never shown');
  t.ok(Date.parse(live.body.expiresAt) > Date.parse(live.body.createdAt));

  await pool.query(`UPDATE holds SET state = 'confirmed', ended_at = now(), reservation_id = $2 WHERE hold_id = $1`, [
    holdId,
    `r_${holdId}`,
  ]);
  const confirmed = await call(url, 'GET', path, { token: alice });
  expect(t, confirmed, 'getHold', 200);
  t.match(confirmed.body, { state: 'confirmed', reservationId: `r_${holdId}` });

  const poolHoldId = `h_read_pool_${spec.eventId}`;
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, seats, pool_id, quantity, state, created_at, expires_at)
     VALUES ($2, $1, 1, 'alice', '{}', 'GA', 3, 'expired', now(), now())`,
    [spec.eventId, poolHoldId],
  );
  const poolHold = await call(url, 'GET', eventPath(spec, `/holds/${poolHoldId}`), { token: alice });
  expect(t, poolHold, 'getHold', 200);
  t.match(poolHold.body, { seats: [], pool: 'GA', quantity: 3, state: 'expired' });

  const theirs = await call(url, 'GET', path, { token: bob });
  expect(t, theirs, 'getHold', 404, 'hold-not-found');
  const none = await call(url, 'GET', eventPath(spec, '/holds/h_nothing'), { token: bob });
  expect(t, none, 'getHold', 404, 'hold-not-found');
  t.same(
    { ...theirs.body, requestId: '', detail: '' },
    { ...none.body, requestId: '', detail: '' },
    "another's hold looks exactly like none",
  );
  expect(t, await call(url, 'GET', `/v1/events/nope/holds/${holdId}`, { token: alice }), 'getHold', 404, 'event-not-found');
  expect(t, await call(url, 'GET', path), 'getHold', 401, 'unauthorized');
  t.equal(live.headers.get('cache-control'), 'no-store');
});

t.test('/metrics: 503 with Retry-After when the workers’ metrics cannot be collected', async (t) => {
  const h = await startHarness(pool, {
    metricsText: () => Promise.reject(new DependencyError('ingress-supervisor', 'no answer')),
  });
  t.teardown(() => h.close());
  const response = await call(h.url, 'GET', '/metrics');
  expect(t, response, 'getMetrics', 503, 'dependency-unavailable');
  t.equal(response.headers.get('retry-after'), '1');
});
