import t, { type Test } from 'tap';
import fc from 'fast-check';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import { gcraDecide, type AdmissionRate } from '../../../src/ingress/admission.js';
import { CommandGate, keyDigest, type GateRequest } from '../../../src/ingress/command-gate.js';
import { BEGIN_SCRIPT, redisKeys } from '../../../src/ingress/redis-scripts.js';
import { DependencyError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { tcpRelay } from '../../support/tcp-relay.js';

const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'gate-test' });
await connectRedis(redis);
t.teardown(() => redis.disconnect());
const gate = new CommandGate(redis, 60);

function request(eventId: string, overrides: Partial<GateRequest> = {}): GateRequest {
  return { eventId, customer: 'alice', idempotencyKey: 'k1', fingerprint: 'fp1', admission: undefined, inFlightTtlMs: 5000, ...overrides };
}

t.test('the Lua GCRA decides exactly like the TypeScript model', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 2000 }),
      fc.integer({ min: 1, max: 20 }),
      fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 60 }),
      async (ratePerS, burst, gaps) => {
        const eventId = uniqueName('gcra');
        const rate: AdmissionRate = { ratePerS, burst };
        let tat: number | undefined;
        let now = 1_700_000_000_000_000; // realistic epoch microseconds: the Lua must keep full precision
        for (const [i, gap] of gaps.entries()) {
          now += gap;
          const model = gcraDecide(tat, now, rate);
          const real = await gate.begin(request(eventId, { idempotencyKey: `k${i}`, admission: rate, nowUs: now }));
          if (model.admitted !== (real.kind === 'claimed')) return false;
          if (!model.admitted && real.kind === 'limited' && Math.abs(real.retryAfterMs - model.retryAfterUs / 1000) > 0.001) return false;
          tat = model.tatUs;
        }
        await redis.del(redisKeys.admission(eventId));
        return true;
      },
    ),
    { numRuns: 40 },
  );
  t.pass('identical decisions and retry-after');
});

t.test('admission on the Redis clock: a burst, then 429s with a wait', async (t) => {
  const eventId = uniqueName('burst');
  const rate = { ratePerS: 5, burst: 5 };
  const decisions = await Promise.all(
    Array.from({ length: 12 }, (_, i) => gate.begin(request(eventId, { idempotencyKey: `k${i}`, admission: rate }))),
  );
  t.equal(decisions.filter((d) => d.kind === 'claimed').length, 5);
  const limited = decisions.filter((d) => d.kind === 'limited');
  t.equal(limited.length, 7);
  for (const d of limited) t.ok(d.kind === 'limited' && d.retryAfterMs > 0 && d.retryAfterMs <= 200, 'waits at most one interval');
  t.ok((await redis.pttl(redisKeys.admission(eventId))) > 0, 'the TAT key expires on its own');
});

t.test('idempotency: claim, in flight, store, replay, mismatch, release', async (t) => {
  const eventId = uniqueName('idem');
  const first = await gate.begin(request(eventId));
  t.equal(first.kind, 'claimed');
  const busy = await gate.begin(request(eventId));
  t.equal(busy.kind, 'in-flight');
  t.ok(busy.kind === 'in-flight' && busy.retryAfterMs > 4000 && busy.retryAfterMs <= 5000);
  t.equal((await gate.begin(request(eventId, { fingerprint: 'other' }))).kind, 'mismatch', 'another request under a busy key');
  t.equal((await gate.begin(request(eventId, { customer: 'bob' }))).kind, 'claimed', 'keys are per customer');
  if (first.kind !== 'claimed') throw new Error('unreachable');
  await gate.store(first.claim, { status: 201, headers: { Location: '/x' }, body: { ok: 1 } });
  const replay = await gate.begin(request(eventId));
  t.same(replay, { kind: 'replay', response: { status: 201, headers: { Location: '/x' }, body: { ok: 1 } } });
  t.equal((await gate.begin(request(eventId, { fingerprint: 'other' }))).kind, 'mismatch');
  const ttl = await redis.ttl(
    redisKeys.idempotency(eventId, (await import('../../../src/ingress/command-gate.js')).keyDigest('alice', 'k1')),
  );
  t.ok(ttl > 50 && ttl <= 60, `stored for the configured TTL (${ttl}s)`);

  const second = await gate.begin(request(eventId, { idempotencyKey: 'k2' }));
  if (second.kind !== 'claimed') throw new Error('expected a claim');
  await gate.release(second.claim);
  t.equal(
    (await gate.begin(request(eventId, { idempotencyKey: 'k2', fingerprint: 'anything' }))).kind,
    'mismatch',
    'a released key stays bound to its request: another under it is a mismatch',
  );
  t.same(await gate.peek(request(eventId, { idempotencyKey: 'k2' })), { kind: 'free' }, 'the same request finds it free');
  const again = await gate.begin(request(eventId, { idempotencyKey: 'k2' }));
  t.equal(again.kind, 'claimed', 'and claims it again, to be decided afresh');
  const k2 = redisKeys.idempotency(eventId, keyDigest('alice', 'k2'));
  t.ok((await redis.ttl(k2)) > 50, 'the binding lasts as long as a stored response would');
  if (again.kind !== 'claimed') throw new Error('unreachable');
  await gate.store(again.claim, { status: 201, headers: {}, body: { ok: 2 } });
  t.equal((await gate.begin(request(eventId, { idempotencyKey: 'k2' }))).kind, 'replay', 'its later success is replayed');
});

t.test('a peek writes nothing: a key it found unused is not bound to the refused request', async (t) => {
  const eventId = uniqueName('peek-unbound');
  t.same(await gate.peek(request(eventId)), { kind: 'free' });
  t.equal(await redis.exists(redisKeys.idempotency(eventId, keyDigest('alice', 'k1'))), 0, 'no record');
  t.equal((await gate.begin(request(eventId, { fingerprint: 'other' }))).kind, 'claimed', 'another request may use the key');
});

t.test('requests of one turn share a script run, and are decided in order as if one by one', async (t) => {
  const [one, two] = [uniqueName('tick'), uniqueName('tick')];
  const done = await gate.begin(request(one, { idempotencyKey: 'done' }));
  if (done.kind !== 'claimed') throw new Error('expected a claim');
  await gate.store(done.claim, { status: 201, headers: {}, body: { n: 1 } });
  // One turn of the event loop: two events, a key twice, a replay, a mismatch, and more requests
  // than one script run takes.
  const decisions = await Promise.all([
    gate.begin(request(one, { idempotencyKey: 'twice' })),
    gate.begin(request(one, { idempotencyKey: 'twice' })),
    gate.begin(request(one, { idempotencyKey: 'done' })),
    gate.begin(request(one, { idempotencyKey: 'done', fingerprint: 'other' })),
    gate.begin(request(two, { idempotencyKey: 'twice' })),
    ...Array.from({ length: 300 }, (_, i) => gate.begin(request(two, { idempotencyKey: `many-${i}` }))),
  ]);
  t.same(
    decisions.slice(0, 5).map((d) => d.kind),
    ['claimed', 'in-flight', 'replay', 'mismatch', 'claimed'],
  );
  t.same(decisions[2], { kind: 'replay', response: { status: 201, headers: {}, body: { n: 1 } } });
  t.equal(decisions.slice(5).filter((d) => d.kind === 'claimed').length, 300, 'each of many claimed');
  // Their responses, stored in one turn too, each under its own key.
  const claims = decisions.slice(5).flatMap((d) => (d.kind === 'claimed' ? [d.claim] : []));
  await Promise.all(claims.map((claim, i) => gate.store(claim, { status: 201, headers: {}, body: { i } })));
  const replays = await Promise.all(Array.from({ length: 300 }, (_, i) => gate.begin(request(two, { idempotencyKey: `many-${i}` }))));
  t.same(
    replays.map((d) => (d.kind === 'replay' ? (d.response.body as { i: number }).i : d.kind)),
    Array.from({ length: 300 }, (_, i) => i),
  );
});

t.test('peek: looks at a key without claiming it or taking admission', async (t) => {
  const eventId = uniqueName('peek');
  const rate = { ratePerS: 1, burst: 1 };
  t.same(await gate.peek(request(eventId, { admission: rate })), { kind: 'free' }, 'an unused key is free');
  t.same(await gate.peek(request(eventId, { admission: rate })), { kind: 'free' }, 'and stays free: nothing was claimed');
  const claim = await gate.begin(request(eventId, { admission: rate }));
  t.equal(claim.kind, 'claimed', 'the peeks took no admission token');
  const inFlight = await gate.peek(request(eventId));
  const begun = await gate.begin(request(eventId));
  t.equal(inFlight.kind, 'in-flight');
  t.equal(begun.kind, 'in-flight', 'peek and begin read the record alike');
  if (inFlight.kind === 'in-flight' && begun.kind === 'in-flight') {
    t.ok(inFlight.retryAfterMs > 0 && inFlight.retryAfterMs <= request(eventId).inFlightTtlMs, 'Retry-After: what is left of the claim');
    t.ok(Math.abs(inFlight.retryAfterMs - begun.retryAfterMs) < 1000);
  }
  t.equal((await gate.peek(request(eventId, { fingerprint: 'other' }))).kind, 'mismatch');
  t.equal((await gate.begin(request(eventId, { fingerprint: 'other' }))).kind, 'mismatch');
  if (claim.kind !== 'claimed') throw new Error('expected a claim');
  await gate.store(claim.claim, { status: 201, headers: {}, body: { won: true } });
  t.same(await gate.peek(request(eventId)), { kind: 'replay', response: { status: 201, headers: {}, body: { won: true } } });
  t.same(await gate.begin(request(eventId)), { kind: 'replay', response: { status: 201, headers: {}, body: { won: true } } });
});

t.test('a key whose request got no answer is unknown: never free to a peek, claimed afresh by a request', async (t) => {
  const eventId = uniqueName('unknown');
  const rate = { ratePerS: 1, burst: 1 };
  const first = await gate.begin(request(eventId, { admission: rate }));
  if (first.kind !== 'claimed') throw new Error('expected a claim');
  await gate.markUnknown(first.claim);
  const record = redisKeys.idempotency(eventId, keyDigest('alice', 'k1'));
  t.same(await gate.peek(request(eventId)), { kind: 'unknown' }, 'a peek must not take it for free');
  t.equal((await gate.peek(request(eventId, { fingerprint: 'other' }))).kind, 'mismatch', 'the key still belongs to its request');
  t.ok((await redis.ttl(record)) > 50, `kept as long as a stored response (${await redis.ttl(record)} s)`);
  t.equal(
    (await gate.begin(request(eventId, { admission: rate }))).kind,
    'limited',
    'a request claims it like a free key: admission first',
  );
  const retry = await gate.begin(request(eventId));
  t.equal(retry.kind, 'claimed', 'and then claims it');
  t.equal((await gate.peek(request(eventId))).kind, 'in-flight');
  const deadline = Number(await redis.hget(record, 'e'));
  t.ok(Math.abs(deadline - (Date.now() + request(eventId).inFlightTtlMs)) < 1000, 'with the deadline of a claim');
  if (retry.kind !== 'claimed') throw new Error('expected a claim');
  // The stale claim of the first request cannot touch it any more.
  await gate.markUnknown(first.claim);
  t.equal((await gate.peek(request(eventId))).kind, 'in-flight', "the first request's claim is no longer its");
  // The retry is refused: the key stays unknown, since the first command may still reach a shard.
  await gate.release(retry.claim);
  t.same(await gate.peek(request(eventId)), { kind: 'unknown' }, 'a refusal under an unknown key gives it back unknown');
  t.ok((await redis.ttl(record)) > 50, 'for as long as a stored response');
  const third = await gate.begin(request(eventId));
  if (third.kind !== 'claimed') throw new Error('expected a claim');
  await gate.store(third.claim, { status: 201, headers: {}, body: { held: true } });
  t.same(await gate.peek(request(eventId)), { kind: 'replay', response: { status: 201, headers: {}, body: { held: true } } });
  t.equal(await redis.hget(record, 's'), 'd', 'only a success ends it');
});

t.test('a claim never finished turns unknown at its deadline, not free', async (t) => {
  const eventId = uniqueName('abandoned');
  const claimed = await gate.begin(request(eventId, { inFlightTtlMs: 200 }));
  if (claimed.kind !== 'claimed') throw new Error('expected a claim');
  const record = redisKeys.idempotency(eventId, keyDigest('alice', 'k1'));
  const busy = await gate.peek(request(eventId));
  t.equal(busy.kind, 'in-flight', 'in flight until its deadline');
  t.ok(busy.kind === 'in-flight' && busy.retryAfterMs > 0 && busy.retryAfterMs <= 200, 'Retry-After: the time left');
  t.ok((await redis.ttl(record)) > 50, 'the record outlives the claim');
  // Its ingress died: nobody finishes the claim.
  await new Promise((resolve) => setTimeout(resolve, 250));
  t.same(await gate.peek(request(eventId)), { kind: 'unknown' }, 'its command may have been carried out');
  t.equal((await gate.peek(request(eventId, { fingerprint: 'other' }))).kind, 'mismatch');
  const retry = await gate.begin(request(eventId));
  if (retry.kind !== 'claimed') throw new Error('expected a claim');
  await gate.release(claimed.claim);
  t.equal((await gate.peek(request(eventId))).kind, 'in-flight', "the dead claim's token no longer counts");
  await gate.release(retry.claim);
  t.same(await gate.peek(request(eventId)), { kind: 'unknown' }, 'and a refusal of the retry keeps it unknown');
});

t.test('a refusal gives a key that was never unknown back free', async (t) => {
  const eventId = uniqueName('refused');
  const claimed = await gate.begin(request(eventId));
  if (claimed.kind !== 'claimed') throw new Error('expected a claim');
  await gate.release(claimed.claim);
  t.same(await gate.peek(request(eventId)), { kind: 'free' });
});

t.test('peeks and claims of one turn go in one script run, decided in order', async (t) => {
  const eventId = uniqueName('peek-batch');
  const rate = { ratePerS: 1, burst: 2 };
  // Every command a client sent that names the event's keys (not those its scripts ran).
  const sent: string[] = [];
  const monitor = await redis.duplicate().monitor();
  t.teardown(() => monitor.disconnect());
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua' && args.some((a) => a.includes(`{${eventId}}`))) sent.push(args[0]!);
  });
  // Issued in one turn: peek k1, claim k1, peek k1, peek k2 ×3, claim k2, claim k3.
  const decisions = await Promise.all([
    gate.peek(request(eventId, { admission: rate })),
    gate.begin(request(eventId, { admission: rate })),
    gate.peek(request(eventId, { admission: rate })),
    ...[1, 2, 3].map(() => gate.peek(request(eventId, { idempotencyKey: 'k2', admission: rate }))),
    gate.begin(request(eventId, { idempotencyKey: 'k2', admission: rate })),
    gate.begin(request(eventId, { idempotencyKey: 'k3', admission: rate })),
  ]);
  t.same(
    decisions.map((d) => d.kind),
    ['free', 'claimed', 'in-flight', 'free', 'free', 'free', 'claimed', 'limited'],
    'a peek sees the claims before it in the batch; peeks take none of the burst of 2',
  );
  await new Promise((resolve) => setTimeout(resolve, 50)); // MONITOR reports asynchronously
  t.same(sent, ['evalsha'], 'one script run for the eight requests, and no other command');
});

t.test('a stale claim cannot overwrite the claim that replaced it', async (t) => {
  const eventId = uniqueName('stale');
  const old = await gate.begin(request(eventId, { inFlightTtlMs: 50 }));
  await new Promise((resolve) => setTimeout(resolve, 80));
  const fresh = await gate.begin(request(eventId));
  if (old.kind !== 'claimed' || fresh.kind !== 'claimed') throw new Error('expected two claims');
  await t.rejects(
    gate.store(old.claim, { status: 201, headers: {}, body: 'stale' }),
    { code: 'idempotency_claim_lost' },
    'a lost claim is said',
  );
  await gate.release(old.claim);
  t.equal((await gate.begin(request(eventId))).kind, 'in-flight', 'the fresh claim stands');
});

t.test('replays and key refusals do not consume admission', async (t) => {
  const eventId = uniqueName('noconsume');
  const rate = { ratePerS: 1, burst: 1 };
  const first = await gate.begin(request(eventId, { admission: rate }));
  if (first.kind !== 'claimed') throw new Error('expected a claim');
  await gate.store(first.claim, { status: 201, headers: {}, body: {} });
  for (let i = 0; i < 5; i++) t.equal((await gate.begin(request(eventId, { admission: rate }))).kind, 'replay');
  t.equal(
    (await gate.begin(request(eventId, { idempotencyKey: 'new', admission: rate }))).kind,
    'limited',
    'the one token went to the first request',
  );
});

/** A gate whose Redis client talks through a relay the test can cut (its commands time out after `commandTimeoutMs`). */
async function gateThroughRelay(t: Test, name: string, commandTimeoutMs?: number) {
  const target = new URL(testConfig().redisUrl);
  const relay = await tcpRelay(target.hostname, Number(target.port));
  const relayed = createRedis({
    url: `redis://127.0.0.1:${relay.port}`,
    log: silentLogger,
    name,
    ...(commandTimeoutMs === undefined ? {} : { commandTimeoutMs }),
  });
  await connectRedis(relayed);
  t.teardown(async () => {
    relayed.disconnect();
    await relay.close();
  });
  return { relay, relayed, relayedGate: new CommandGate(relayed, 60) };
}

t.test('a begin whose reply was lost with the connection is resent and claims, admitted once', async (t) => {
  // The relay delivers the script to Redis but drops its reply, then cuts the connection: ioredis
  // reconnects and resends the unanswered command, so the script runs twice for one request.
  const { relay, relayedGate } = await gateThroughRelay(t, 'gate-resend-test');
  const eventId = uniqueName('resend');
  const rate = { ratePerS: 1, burst: 3 };
  t.equal((await relayedGate.begin(request(eventId, { idempotencyKey: 'warm', admission: rate }))).kind, 'claimed', 'script loaded');
  relay.blackholeReplies();
  const decision = relayedGate.begin(request(eventId, { admission: rate }));
  const record = redisKeys.idempotency(eventId, keyDigest('alice', 'k1'));
  for (let i = 0; i < 100 && (await redis.exists(record)) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(await redis.exists(record), 1, 'Redis ran the script; its reply is lost');
  relay.restore();
  t.equal((await decision).kind, 'claimed', 'the resent script finds its own claim: claimed, not in flight');
  t.equal(
    (await gate.begin(request(eventId, { idempotencyKey: 'third', admission: rate }))).kind,
    'claimed',
    'the resend took no second admission token (burst 3: the warm-up, this request once, a third)',
  );
});

t.test('a begin that timed out after Redis ran it gives its claim back: a retry is not held off as in flight', async (t) => {
  const { relay, relayedGate } = await gateThroughRelay(t, 'gate-timeout-test', 300);
  const eventId = uniqueName('timeout');
  t.equal((await relayedGate.begin(request(eventId, { idempotencyKey: 'warm' }))).kind, 'claimed', 'script loaded');
  relay.blackholeReplies(); // Redis runs what it is sent; nothing comes back
  await t.rejects(relayedGate.begin(request(eventId)), DependencyError, 'the begin times out: 503 to its request');
  const record = redisKeys.idempotency(eventId, keyDigest('alice', 'k1'));
  for (let i = 0; i < 100 && (await redis.exists(record)) === 1; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal((await gate.begin(request(eventId))).kind, 'claimed', 'its retry claims the key at once (not 409 in flight for seconds)');
});

t.test('a begin that timed out while its connection was lost is given back once Redis is reached again', async (t) => {
  // The begin is written, the connection is lost before Redis answers, and it stays lost past the
  // command's timeout (the request gets its 503). ioredis resends the unanswered script when it
  // reconnects — which claims the key — while the give-back the timeout made could not be sent.
  const { relay, relayed, relayedGate } = await gateThroughRelay(t, 'gate-lost-test', 300);
  const eventId = uniqueName('lost');
  t.equal((await relayedGate.begin(request(eventId, { idempotencyKey: 'warm' }))).kind, 'claimed', 'script loaded');
  relay.blackhole();
  const decision = relayedGate.begin(request(eventId));
  await new Promise((resolve) => setTimeout(resolve, 50));
  relay.refuse(); // the connection closes; reconnecting fails
  await t.rejects(decision, DependencyError, 'the begin times out: 503 to its request');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const reconnected = new Promise((resolve) => relayed.once('ready', resolve));
  relay.restore();
  await reconnected;
  const record = redisKeys.idempotency(eventId, keyDigest('alice', 'k1'));
  const within = async (ms: number, done: () => Promise<boolean>) => {
    for (const until = Date.now() + ms; Date.now() < until && !(await done());) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  await within(1000, async () => (await redis.exists(record)) === 1);
  t.equal(await redis.exists(record), 1, 'the resent script claimed the key');
  await within(1000, async () => (await redis.hget(record, 's')) !== 'i');
  t.equal((await gate.begin(request(eventId))).kind, 'claimed', 'its retry claims the key at once (not 409 in flight for seconds)');
});

t.test('Redis down → DependencyError (retryable), not a hang', async (t) => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', log: silentLogger });
  dead.connect().catch(() => undefined);
  const deadGate = new CommandGate(dead, 60);
  const started = Date.now();
  await t.rejects(deadGate.begin(request('x')), DependencyError);
  t.ok(Date.now() - started < 1000, 'fails fast');
  dead.disconnect();
});

t.test('a claim says whether the key was ever left unknown: only then may an earlier request have been carried out', async (t) => {
  const eventId = uniqueName('earlier');
  const claimOf = async (r: ReturnType<typeof request>) => {
    const decision = await gate.begin(r);
    if (decision.kind !== 'claimed') throw new Error(`expected a claim, got ${decision.kind}`);
    return decision;
  };
  const fresh = await claimOf(request(eventId));
  t.equal(fresh.earlierUnknown, false, 'a key never used');
  await gate.release(fresh.claim);
  const refusedBefore = await claimOf(request(eventId));
  t.equal(refusedBefore.earlierUnknown, false, 'a key only refused before');
  await gate.markUnknown(refusedBefore.claim);
  const afterUnknown = await claimOf(request(eventId));
  t.equal(afterUnknown.earlierUnknown, true, 'a key left unknown');
  await gate.release(afterUnknown.claim);
  t.equal((await claimOf(request(eventId))).earlierUnknown, true, 'and once unknown, for good (a refusal since changes nothing)');

  const abandoned = uniqueName('earlier-abandoned');
  await claimOf(request(abandoned, { inFlightTtlMs: 100 }));
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal((await claimOf(request(abandoned))).earlierUnknown, true, 'a claim its ingress never finished, past its deadline');

  // The script run twice for one request (ioredis resends a command whose reply was lost with the
  // connection): the second run finds its own claim, and says the same.
  const resent = uniqueName('earlier-resent');
  await gate.markUnknown((await claimOf(request(resent))).claim);
  const run = () =>
    redis.eval(
      BEGIN_SCRIPT,
      2,
      redisKeys.admission(resent),
      redisKeys.idempotency(resent, keyDigest('alice', 'k1')),
      'fp1',
      'tok-1',
      '5000',
      '0',
      '0',
      '0',
      '',
      '60',
    );
  t.same(await run(), [['claimed', 'unknown']], 'the claim of a key left unknown');
  t.same(await run(), [['claimed', 'unknown']], 'and its resend');
});
