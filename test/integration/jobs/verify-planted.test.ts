/**
 * `verify` against a database with planted violations: a double sale, a hold past its TTL, a hold
 * confirmed after it expired, a customer over the limit, broken counters, a reservation without
 * an outbox row, a published reservation missing from the topic, an unknown message on the topic,
 * and a response log that claims what Postgres never saw. Each must be reported under its check; a
 * clean event must pass. Then the checks over an event's history (seats held twice and limits
 * exceeded by holds that have all ended since), the wait for reservations the relay had not
 * published yet, and response logs with nothing to check.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createIdempotentProducer, createKafka } from '../../../src/adapters/kafka/client.js';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import { heldShardLeases, shardLeaseKey } from '../../../src/engine/shard-lease.js';
import { keyDigest, strictPassKey } from '../../../src/ingress/command-gate.js';
import { verifyEvent, verifyExitCode, type VerifyOptions, type VerifyReport } from '../../../src/jobs/verify/verify.js';
import type { CheckName } from '../../../src/jobs/verify/violations.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { provisionTestEvent, sleep, testDatabase, testLayout } from '../../support/stack.js';

const config = testConfig();
/**
 * The hold TTL of every event here: the planted holds live up to 2 h 10 min from creation to expiry
 * (`hold`), as an engine would give them under this TTL — except the one planted to break it.
 */
const HOLD_TTL_MS = 3 * 3_600_000;
const pool = await testDatabase();
t.teardown(() => pool.end());
const spec = await provisionTestEvent(pool, {
  holdTtlMs: HOLD_TTL_MS,
  layout: testLayout({ rows: 8, seats: 20, pool: 40 }),
  customerLimit: 8,
});
const clean = await provisionTestEvent(pool, { holdTtlMs: HOLD_TTL_MS });
const ev = spec.eventId;

const shardOf = async (seat: string, eventId = ev) =>
  (await pool.query<{ shard: number }>('SELECT shard FROM seats WHERE event_id = $1 AND seat_id = $2', [eventId, seat])).rows[0]!.shard;

/** Where a planted reservation's outbox row stands: published (the default), unpublished for the test to relay, or missing. */
type Outbox = 'published' | 'unpublished' | 'none';

/** A topic no relay serves: rows the test publishes itself (`relay`), so no relay of another test takes them first. */
const MANUAL_TOPIC = 'verify-test-manual';

const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'verify-test', log: silentLogger });
const producer = createIdempotentProducer(kafka);
await producer.connect();
t.teardown(() => producer.disconnect());

/**
 * What a relay does: send the row's message to the topic the row was written for, then mark the row
 * published (verify counts only the rows of the topic it reads).
 */
async function relay(eventId: string, key: string): Promise<void> {
  const { rows } = await pool.query<{ topic: string; payload: object }>(
    'SELECT topic, payload FROM outbox WHERE event_id = $1 AND message_key = $2',
    [eventId, key],
  );
  await producer.send({ topic: rows[0]!.topic, messages: [{ key, value: JSON.stringify(rows[0]!.payload) }] });
  await pool.query('UPDATE outbox SET published_at = now() WHERE event_id = $1 AND message_key = $2', [eventId, key]);
}

/** An hour ago plus `minutes`. */
const base = Date.now() - 3_600_000;
const minute = (minutes: number) => new Date(base + minutes * 60_000);

/**
 * An ended hold as the engine writes it, at `minute`s of the last hour (`hold`: the id's suffix);
 * `released`: when its release was decided (the idempotency record).
 */
async function ended(
  eventId: string,
  hold: string,
  customer: string,
  what: { seats: string[] } | { pool: string; quantity: number },
  state: 'expired' | 'released',
  times: { created: number; expires: number; ended: number; released?: number },
): Promise<void> {
  const seats = 'seats' in what ? what.seats : [];
  const shard =
    'seats' in what
      ? await shardOf(seats[0]!, eventId)
      : (await pool.query<{ shard: number }>('SELECT shard FROM pools WHERE event_id = $1 AND pool_id = $2', [eventId, what.pool])).rows[0]!
          .shard;
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, seats, pool_id, quantity, state, created_at, expires_at, ended_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      `${eventId}-${hold}`,
      eventId,
      shard,
      customer,
      seats,
      'pool' in what ? what.pool : null,
      'pool' in what ? what.quantity : seats.length,
      state,
      minute(times.created),
      minute(times.expires),
      minute(times.ended),
    ],
  );
  if (times.released !== undefined) {
    await pool.query(
      `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at) VALUES ($1, $2, $3, $4, 'release', $5, $6)`,
      [eventId, shard, `release-${hold}`, customer, { ok: true, type: 'released', holdId: `${eventId}-${hold}` }, minute(times.released)],
    );
  }
}

async function hold(
  id: string,
  customer: string,
  seats: string[],
  state: 'live' | 'confirmed' | 'released',
  options: {
    event?: string;
    expiresInMs?: number;
    reservation?: string;
    outbox?: Outbox;
    confirmedAgoMs?: number;
    seatState?: 'held' | 'sold' | null;
  } = {},
): Promise<void> {
  const eventId = options.event ?? ev;
  const shard = await shardOf(seats[0]!, eventId);
  const expires = options.expiresInMs ?? 600_000;
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at, ended_at, reservation_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now() - interval '2 hours', now() + make_interval(secs => $8::float8 / 1000),
             CASE WHEN $7 = 'live' THEN NULL ELSE now() END, $9)`,
    [id, eventId, shard, customer, seats, seats.length, state, expires, options.reservation ?? null],
  );
  if (options.reservation) {
    await pool.query(
      `INSERT INTO reservations (reservation_id, event_id, hold_id, shard, customer, seats, quantity, confirmed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now() - make_interval(secs => $8::float8 / 1000))`,
      [options.reservation, eventId, id, shard, customer, seats, seats.length, options.confirmedAgoMs ?? 60_000],
    );
    const outbox = options.outbox ?? 'published';
    if (outbox !== 'none') {
      // What the engine writes: the message the relay publishes.
      const payload = { type: 'reservation.confirmed', eventId, shard, reservationId: options.reservation, holdId: id, customer, seats };
      await pool.query(
        `INSERT INTO outbox (event_id, topic, message_key, payload, published_at)
         VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)`,
        [
          eventId,
          outbox === 'published' ? config.reservationsTopic : MANUAL_TOPIC,
          options.reservation,
          { ...payload, quantity: seats.length },
          outbox === 'published',
        ],
      );
    }
  }
  const seatState =
    options.seatState === undefined ? (state === 'live' ? 'held' : state === 'confirmed' ? 'sold' : null) : options.seatState;
  if (seatState)
    await pool.query('UPDATE seats SET state = $3, hold_id = $4 WHERE event_id = $1 AND seat_id = ANY($2)', [
      eventId,
      seats,
      seatState,
      id,
    ]);
  if (state !== 'released') {
    await pool.query(
      `INSERT INTO customer_usage (event_id, customer, used) VALUES ($1, $2, $3)
       ON CONFLICT (event_id, customer) DO UPDATE SET used = customer_usage.used + excluded.used`,
      [eventId, customer, seats.length],
    );
  }
}

// 1. A double sale of A-1-1: two confirmed holds and two reservations; the seat row names the first.
await hold(`${ev}-hA`, 'alice', ['A-1-1'], 'confirmed', { reservation: `${ev}-rA` });
// Postgres refuses a second reservation of a seat (migration 0012): a double sale is planted past that guard.
await pool.query("DELETE FROM reservation_seats WHERE event_id = $1 AND seat_id = 'A-1-1'", [ev]);
await hold(`${ev}-hB`, 'bob', ['A-1-1'], 'confirmed', { reservation: `${ev}-rB`, seatState: null });
// 2. A live hold an hour past its TTL on a shard someone serves.
await hold(`${ev}-hC`, 'carol', ['A-2-1'], 'live', { expiresInMs: -3_600_000 });
await pool.query("UPDATE shards SET owner = 'engine-ghost' WHERE event_id = $1 AND shard = $2", [ev, await shardOf('A-2-1')]);
// 3. A hold confirmed an hour after it expired.
await hold(`${ev}-hD`, 'dave', ['A-3-1'], 'confirmed', { expiresInMs: -3_600_000, reservation: `${ev}-rD` });
// 4. A customer over the limit of 8.
await hold(`${ev}-hE`, 'erin', ['A-4-1', 'A-4-2', 'A-4-3', 'A-4-4', 'A-4-5', 'A-4-6', 'A-4-7', 'A-4-8', 'A-4-9'], 'live');
// 5. A usage counter with no holds behind it.
await pool.query("INSERT INTO customer_usage (event_id, customer, used) VALUES ($1, 'frank', 3)", [ev]);
// 6. A reservation that never got an outbox row.
await hold(`${ev}-hG`, 'grace', ['A-5-1'], 'confirmed', { reservation: `${ev}-rG`, outbox: 'none' });
// 7. A pool counter that claims sales no reservation explains.
await pool.query("UPDATE pools SET sold = 2 WHERE event_id = $1 AND pool_id = 'GA'", [ev]);
// 8. A reservation whose hold was released.
await hold(`${ev}-hH`, 'heidi', ['A-6-1'], 'released', { reservation: `${ev}-rH` });
// 8b. A reservation confirmed a moment ago whose outbox row is published, yet which is not on the
// topic: recent or not, a published row's message is below the high-water marks verify reads to.
await hold(`${ev}-hK`, 'kate', ['A-6-2'], 'confirmed', { reservation: `${ev}-rK`, confirmedAgoMs: 0 });
// 8c. A reservation whose message came twice, the second copy naming someone else.
await hold(`${ev}-hL`, 'lucy', ['A-6-3'], 'confirmed', { reservation: `${ev}-rL` });
const lucy = { eventId: ev, reservationId: `${ev}-rL`, holdId: `${ev}-hL`, customer: 'lucy', seats: ['A-6-3'], quantity: 1 };
// 8d. A hold given longer than the event's TTL: created two hours ago, it expires in two more.
await hold(`${ev}-hM`, 'mia', ['A-7-20'], 'live', { expiresInMs: 7_200_000 });
// 9. A message on the topic Postgres never heard of.
await producer.send({
  topic: config.reservationsTopic,
  messages: [
    {
      key: `${ev}-r-phantom`,
      value: JSON.stringify({ eventId: ev, reservationId: `${ev}-r-phantom`, customer: 'mallory', seats: ['A-8-1'], quantity: 1 }),
    },
    { key: `${ev}-rL`, value: JSON.stringify(lucy) },
    { key: `${ev}-rL`, value: JSON.stringify({ ...lucy, customer: 'mallory' }) },
  ],
});
// 10. A request the shard carried out (its success recorded under the request's key), whose client
// was last told 409 — and one the shard did refuse.
await pool.query(
  `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at) VALUES ($1, $2, $3, 'olga', 'reserve', $4, now())`,
  [ev, await shardOf('A-7-2'), keyDigest('olga', 'olga-k1'), { ok: true, type: 'reserved' }],
);
// 10b. A best-available hold over several shards held in its strict pass, told 409.
await pool.query(
  `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at) VALUES ($1, 0, $2, 'otto', 'hold-best', $3, now())`,
  [ev, strictPassKey(keyDigest('otto', 'otto-k1')), { ok: true, type: 'held' }],
);
// 11. A response log: a reservation the database never saw, one seat told sold to two clients, and
// olga's and pete's refusals.
const dir = mkdtempSync(join(tmpdir(), 'verify-test-'));
const logPath = join(dir, 'run.jsonl');
/** A response record of `eventId` as stress writes it. */
const lineOf = (eventId: string, r: object) =>
  JSON.stringify({ at: Date.now(), run: 'planted', event: eventId, buyer: 0, attempt: 1, ms: 1, ...r });
const line = (r: object) => lineOf(ev, r);
/** A response log of these lines (or this text), in the test's directory. */
const writeLog = (name: string, lines: readonly string[] | string) => {
  const path = join(dir, name);
  writeFileSync(path, typeof lines === 'string' ? lines : `${lines.join('\n')}\n`);
  return path;
};
writeFileSync(
  logPath,
  [
    line({
      customer: 'ivan',
      op: 'reserve',
      status: 201,
      seat: 'A-7-1',
      hold: `${ev}-h-ghost1`,
      reservation: `${ev}-r-ghost1`,
      seats: ['A-7-1'],
      decidedAt: 1,
    }),
    line({
      customer: 'judy',
      op: 'reserve',
      status: 201,
      seat: 'A-7-1',
      hold: `${ev}-h-ghost2`,
      reservation: `${ev}-r-ghost2`,
      seats: ['A-7-1'],
      decidedAt: 2,
    }),
    line({ customer: 'alice', op: 'confirm', status: 201, hold: `${ev}-hA`, reservation: `${ev}-rA`, seats: ['A-1-1'], decidedAt: 3 }),
    line({ customer: 'erin', op: 'release', status: 204, hold: `${ev}-hE` }),
    line({ customer: 'olga', op: 'reserve', key: 'olga-k1', seat: 'A-7-2', status: 503, error: 'shard-unavailable' }),
    line({ customer: 'olga', op: 'reserve', key: 'olga-k1', seat: 'A-7-2', status: 409, error: 'seats-unavailable', attempt: 2 }),
    line({ customer: 'pete', op: 'reserve', key: 'pete-k1', seat: 'A-7-3', status: 409, error: 'seats-unavailable' }),
    line({ customer: 'otto', op: 'hold-best', key: 'otto-k1', status: 409, error: 'seats-unavailable' }),
    '',
  ].join('\n'),
);

const verify = (eventId: string, logs: string[] = [], options: Partial<VerifyOptions> = {}) =>
  verifyEvent({
    eventId,
    pool,
    logs,
    kafka: { brokers: config.kafkaBrokers, topic: config.reservationsTopic },
    ttlSlackMs: 2000,
    settleTimeoutMs: 500,
    topicTimeoutMs: 30_000,
    log: silentLogger,
    ...options,
  });
const messagesOf = (report: VerifyReport, check: CheckName) =>
  report.violations
    .filter((v) => v.check === check)
    .map((v) => v.message)
    .join('\n');

t.test('every planted violation is reported under its check', async (t) => {
  const report = await verify(ev, [logPath]);
  t.equal(report.ok, false);
  const count = (check: CheckName) => report.checks.find((c) => c.check === check)!.violations;
  const messages = (check: CheckName) =>
    report.violations
      .filter((v) => v.check === check)
      .map((v) => v.message)
      .join('\n');
  t.ok(count('seat-held-twice') >= 1, 'seat held twice');
  t.match(
    messages('seat-held-twice'),
    new RegExp(
      `seat A-1-1 was given to bob \\(confirmed hold ${ev}-hB\\) at \\S+ while confirmed hold ${ev}-hA of alice still held it \\(from \\S+ on\\)`,
    ),
  );
  t.match(messages('seat-sold-twice'), /seat A-1-1 is sold 2 times/);
  t.match(
    messages('seat-row-disagrees'),
    new RegExp(`confirmed hold ${ev}-hB has seat A-1-1, but the seat row is sold with hold ${ev}-hA`),
  );
  t.match(messages('hold-past-ttl'), new RegExp(`hold ${ev}-hC on served shard \\d+ is still live \\d+ ms after it expired`));
  t.match(messages('hold-past-ttl'), new RegExp(`hold ${ev}-hD was confirmed \\(${ev}-rD\\) \\d+ ms after it expired`));
  t.match(
    messages('hold-longer-than-ttl'),
    new RegExp(`^live hold ${ev}-hM \\(created \\S+\\) was given 14400000 ms until its expiry: more than 10800000 ms \\+ 2000 ms slack`),
  );
  t.equal(count('hold-longer-than-ttl'), 1, 'the holds given no more than the TTL are not');
  t.match(
    messages('customer-limit'),
    /customer erin held or had bought 9 seats or places at once \(at \S+\); the event's limit is now 8 \(if it was lowered/,
  );
  t.match(messages('usage-disagrees'), /customer frank: usage counter 3, live \+ confirmed holds 0/);
  t.match(messages('outbox-missing'), new RegExp(`reservation ${ev}-rG has no outbox row`));
  t.match(messages('over-capacity'), /pool GA: counter says 2 sold, reservations say 0/);
  t.match(messages('reservation-disagrees'), new RegExp(`reservation ${ev}-rH \\(hold ${ev}-hH\\): its hold is released`));
  t.equal(count('topic-missing'), 6, 'none of the six planted reservations reached the topic');
  t.match(messages('topic-missing'), new RegExp(`reservation ${ev}-rG of grace is not on the topic: it has no outbox row`));
  t.match(
    messages('topic-missing'),
    new RegExp(`reservation ${ev}-rK of kate is not on the topic: its outbox row was published before verify read the topic`),
    'a reservation confirmed a moment ago is not excused when its row was published',
  );
  t.equal(report.counts.topic?.rechecked, 0);
  t.match(messages('topic-unknown'), new RegExp(`message ${ev}-r-phantom on the topic names a reservation Postgres does not have`));
  t.match(
    messages('topic-unknown'),
    new RegExp(`message ${ev}-rL disagrees with its reservation in Postgres: .*"customer":"mallory"`),
    'a duplicate of a key is compared too, not only its first copy',
  );
  t.match(messages('ack-missing'), new RegExp(`reservation ${ev}-r-ghost1 \\(201 to ivan\\) is not in the database`));
  t.match(messages('ack-missing'), new RegExp(`hold ${ev}-hE was released \\(204 to erin\\) but is live`));
  t.match(messages('client-double-sale'), /seat A-7-1 was sold to ivan .* and to judy/);
  t.equal(count('refusal-untrue'), 2, "pete's refusal was true");
  t.match(
    messages('refusal-untrue'),
    /^olga's reserve \(Idempotency-Key olga-k1\) was answered 409 seats-unavailable \(attempt 2\), but shard \d+ carried it out$/m,
  );
  t.match(
    messages('refusal-untrue'),
    /otto's hold-best \(Idempotency-Key otto-k1\) was answered 409 seats-unavailable \(attempt 1\), but shard 0 carried it out/,
    'also in the strict pass of a hold over several shards',
  );
  t.equal(report.counts.log?.refused, 3);
  t.match(report.counts.topic, { messages: 3, unique: 2, duplicates: 1 });
  t.equal(report.counts.log?.acknowledged.reservations, 3);
  t.equal(report.counts.inventory.reservations, 7);
  t.ok(
    report.checks.every((c) => c.violations > 0),
    'every check caught its plant',
  );
});

t.test('a clean event passes', async (t) => {
  const report = await verify(clean.eventId);
  t.equal(report.ok, true, JSON.stringify(report.violations));
  t.equal(report.counts.inventory.seats.total, 160);
  t.same(
    report.checks.filter((c) => c.skipped).map((c) => c.check),
    ['client-double-sale', 'ack-missing', 'refusal-untrue'],
    'the checks of a response log are skipped without one',
  );
});

t.test('the CLI exits 1 on violations, 0 when clean, 2 for an unknown event, 3 when it could not check', async (t) => {
  const run = promisify(execFile);
  const cli = (args: string[]) =>
    run(process.execPath, ['bin/sentinel.js', 'verify', ...args], { env: process.env }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  const empty = join(dir, 'empty.jsonl');
  writeFileSync(empty, '');
  const unchecked = await cli(['--event', clean.eventId, '--no-topic', '--log', empty]);
  t.equal(unchecked.code, 3, 'a log with nothing to check: exit 3');
  t.match(unchecked.stdout, /NOT CHECKED — no violation found, but 3 checks could not be made/);
  t.match(unchecked.stdout, new RegExp(`not checked\\n {4}the response log ${empty} is empty`));
  const missing = join(dir, 'no-such-log.jsonl');
  const usage = await cli(['--event', clean.eventId, '--no-topic', '--log', missing]);
  t.equal(usage.code, 2, 'a --log that does not exist: a usage error');
  t.match(usage.stderr, new RegExp(`verify: cannot read the response log ${missing}: ENOENT`));
  t.notMatch(usage.stderr, /\n\s+at /, 'no stack trace');
  // A line cut off (a run killed mid-write), a null line: not checked, the file and line named, JSON still printed.
  const loser = lineOf(clean.eventId, { customer: 'c', op: 'hold', seat: 'A-1-1', status: 409 });
  for (const [name, text, why] of [
    ['cut.jsonl', `${loser}\n{"at":1,"run":"x","eve`, ':2: not a JSON line'],
    ['null.jsonl', `null\n${loser}\n`, ':1: not a JSON object (null)'],
  ] as const) {
    const log = writeLog(name, text);
    const result = await cli(['--event', clean.eventId, '--no-topic', '--json', '--log', log]);
    t.equal(result.code, 3, `${name}: exit 3`);
    t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
    const report = JSON.parse(result.stdout) as VerifyReport;
    t.equal(report.ok, false);
    t.match(report.not_checked, [`${log}${why}`]);
    t.equal(report.counts.log?.status['409'], 1, 'the readable lines are read');
  }
  const bad = await cli(['--event', ev, '--log', logPath, '--json', '--settle', '500ms']);
  t.equal(bad.code, 1);
  const json = JSON.parse(bad.stdout) as { ok: boolean; violations: unknown[]; counts: object };
  t.equal(json.ok, false);
  t.ok(json.violations.length > 10);
  const good = await cli(['--event', clean.eventId, '--no-topic']);
  t.equal(good.code, 0);
  t.match(good.stdout, /OK — every invariant holds/);
  t.equal((await cli(['--event', 'no-such-event'])).code, 2);
});

t.test('seats held twice and limits exceeded are found in the history, after every hold ended', async (t) => {
  const history = await provisionTestEvent(pool, {
    holdTtlMs: HOLD_TTL_MS,
    layout: testLayout({ rows: 4, seats: 10, pool: 20 }),
    customerLimit: 4,
  });
  const id = history.eventId;
  // A-1-1: two customers held it at once (minutes 5-10); both holds expired since.
  await ended(id, 'h1', 'alice', { seats: ['A-1-1'] }, 'expired', { created: 0, expires: 10, ended: 20 });
  await ended(id, 'h2', 'bob', { seats: ['A-1-1'] }, 'expired', { created: 5, expires: 15, ended: 16 });
  // A-1-2: taken after the first hold's expiry time, before the commit that wrote the expiry: not twice.
  await ended(id, 'h3', 'carol', { seats: ['A-1-2'] }, 'expired', { created: 0, expires: 10, ended: 11 });
  await ended(id, 'h4', 'dave', { seats: ['A-1-2'] }, 'expired', { created: 10.5, expires: 20.5, ended: 21 });
  // A-1-3: taken after the release was decided, before the commit that wrote it: not twice.
  await ended(id, 'h5', 'erin', { seats: ['A-1-3'] }, 'released', { created: 0, expires: 10, ended: 3, released: 2 });
  await ended(id, 'h6', 'frank', { seats: ['A-1-3'] }, 'released', { created: 2.5, expires: 12.5, ended: 4 });
  // A-1-4: taken before the release was decided: twice.
  await ended(id, 'h7', 'gina', { seats: ['A-1-4'] }, 'released', { created: 0, expires: 10, ended: 3, released: 2 });
  await ended(id, 'h8', 'hank', { seats: ['A-1-4'] }, 'released', { created: 1, expires: 11, ended: 4 });
  // A customer with 3 + 3 seats at once (minutes 5-10), over the limit of 4; both holds expired.
  await ended(id, 'h9', 'grace', { seats: ['A-2-1', 'A-2-2', 'A-2-3'] }, 'expired', { created: 0, expires: 10, ended: 10 });
  await ended(id, 'h10', 'grace', { seats: ['A-2-4', 'A-2-5', 'A-2-6'] }, 'expired', { created: 5, expires: 15, ended: 15 });
  // 3 then 3 seats, the second taken as the first expired: never more than 3 at once.
  await ended(id, 'h11', 'heidi', { seats: ['A-3-1', 'A-3-2', 'A-3-3'] }, 'expired', { created: 0, expires: 10, ended: 12 });
  await ended(id, 'h12', 'heidi', { seats: ['A-3-4', 'A-3-5', 'A-3-6'] }, 'expired', { created: 10, expires: 20, ended: 20 });
  // Places count by quantity: 3 + 2 at once.
  await ended(id, 'h13', 'ivan', { pool: 'GA', quantity: 3 }, 'expired', { created: 0, expires: 10, ended: 10 });
  await ended(id, 'h14', 'ivan', { pool: 'GA', quantity: 2 }, 'released', { created: 1, expires: 11, ended: 3, released: 2 });

  const report = await verify(id, [], { kafka: undefined });
  const count = (check: CheckName) => report.checks.find((c) => c.check === check)!.violations;
  t.equal(report.counts.inventory.holds.live + report.counts.inventory.holds.confirmed, 0, 'the final state has no live or confirmed hold');
  t.equal(count('seat-held-twice'), 2, messagesOf(report, 'seat-held-twice'));
  t.match(
    messagesOf(report, 'seat-held-twice'),
    new RegExp(
      `seat A-1-1 was given to bob \\(expired hold ${id}-h2\\) at ${minute(5).toISOString()} while expired hold ${id}-h1 of alice still held it \\(from ${minute(0).toISOString()} until ${minute(10).toISOString()}\\)`,
    ),
  );
  t.match(
    messagesOf(report, 'seat-held-twice'),
    new RegExp(
      `seat A-1-4 was given to hank \\(released hold ${id}-h8\\) at \\S+ while released hold ${id}-h7 of gina still held it \\(from \\S+ until ${minute(2).toISOString()}\\)`,
    ),
  );
  t.equal(count('customer-limit'), 2, messagesOf(report, 'customer-limit'));
  t.match(
    messagesOf(report, 'customer-limit'),
    new RegExp(
      `customer grace held or had bought 6 seats or places at once \\(at ${minute(5).toISOString()}\\); the event's limit is now 4`,
    ),
  );
  t.match(messagesOf(report, 'customer-limit'), /customer ivan held or had bought 5 seats or places at once/);
  t.equal(report.counts.violations, 4, JSON.stringify(report.violations, null, 2));
});

t.test('a reservation not yet published when the topic was read is checked after waiting for the relay, not excused', async (t) => {
  const late = (await provisionTestEvent(pool, { holdTtlMs: HOLD_TTL_MS })).eventId;
  // Nothing is left unpublished, whatever the test's outcome.
  t.teardown(() => relay(late, `${late}-r2`));
  await hold(`${late}-h1`, 'lena', ['A-1-1'], 'confirmed', { event: late, reservation: `${late}-r1`, outbox: 'unpublished' });
  await hold(`${late}-h2`, 'mike', ['A-1-2'], 'confirmed', { event: late, reservation: `${late}-r2`, outbox: 'unpublished' });
  // Written for the reservations topic verify reads, as the engines' relay would publish them.
  await pool.query('UPDATE outbox SET topic = $2 WHERE event_id = $1', [late, config.reservationsTopic]);
  // The relay publishes r1 after verify stopped waiting for the outbox (1 s) and read the topic's
  // end; r2 it never publishes.
  const verifying = verify(late, [], { settleTimeoutMs: 1000 });
  await sleep(1500);
  await relay(late, `${late}-r1`);
  const report = await verifying;
  t.equal(report.checks.find((c) => c.check === 'topic-missing')!.violations, 1, messagesOf(report, 'topic-missing'));
  t.match(
    messagesOf(report, 'topic-missing'),
    new RegExp(`reservation ${late}-r2 of mike is not on the topic: its outbox row is still unpublished after waiting 1 s for the relay`),
  );
  t.ok((report.counts.topic?.rechecked ?? 0) >= 1, 'r1 was checked on the second read');
  t.equal(report.counts.topic?.unique, 1, 'r1 is on the topic');
  t.equal(report.counts.violations, 1, JSON.stringify(report.violations, null, 2));
});

t.test('a response log with no record of the event checks nothing: not ok, and said so', async (t) => {
  const empty = join(dir, 'nothing.jsonl');
  writeFileSync(empty, '');
  const others = join(dir, 'others.jsonl');
  writeFileSync(
    others,
    `${JSON.stringify({ at: 1, run: 'r', event: 'another-event', buyer: 0, attempt: 1, ms: 1, customer: 'x', op: 'reserve', status: 201, hold: 'h', reservation: 'r', seats: ['A-1-1'] })}\n`,
  );
  for (const [log, why] of [
    [[empty], `the response log ${empty} is empty`],
    [[others], `the response log ${others} holds no record of event ${clean.eventId} (1 lines, all of other events)`],
    // An empty log is not hidden by a good one beside it.
    [
      [writeLog('one-loser.jsonl', [lineOf(clean.eventId, { customer: 'c', op: 'hold', status: 409 })]), empty],
      `the response log ${empty} is empty`,
    ],
  ] as const) {
    const report = await verify(clean.eventId, [...log], { kafka: undefined });
    t.equal(report.ok, false, 'not ok');
    t.equal(report.counts.violations, 0);
    t.equal(report.not_checked.length, 1);
    t.equal(report.not_checked[0], why);
    t.same(
      report.checks.filter((c) => c.unchecked).map((c) => c.check),
      ['client-double-sale', 'ack-missing', 'refusal-untrue'],
    );
    t.equal(verifyExitCode(report), 3);
  }
  // 201s that name nothing: something to check, and each a violation.
  const unnamed = join(dir, 'unnamed.jsonl');
  writeFileSync(
    unnamed,
    ['hold', 'reserve']
      .map((op) => JSON.stringify({ at: 1, run: 'r', event: clean.eventId, buyer: 0, attempt: 1, ms: 1, customer: 'y', op, status: 201 }))
      .join('\n'),
  );
  const report = await verify(clean.eventId, [unnamed], { kafka: undefined });
  t.same(report.not_checked, []);
  t.equal(report.checks.find((c) => c.check === 'ack-missing')!.violations, 2);
  t.match(messagesOf(report, 'ack-missing'), /a 201 to y for hold names no hold/);
  t.equal(verifyExitCode(report), 1);
});

const violationCount = (report: VerifyReport, check: CheckName) => report.checks.find((c) => c.check === check)!.violations;

t.test('a clean event with holds, a sale, releases, an expiry and a loser passes', async (t) => {
  const id = (
    await provisionTestEvent(pool, { holdTtlMs: HOLD_TTL_MS, layout: testLayout({ rows: 2, seats: 10, pool: 4 }), customerLimit: 4 })
  ).eventId;
  const decided = (minutes: number) => minute(minutes).getTime();
  // alice holds A-1-1 and buys it; bob asks for it after and loses (409).
  // Its row is published to the reservations topic verify reads, as the engines' relay would.
  await hold(`${id}-h1`, 'alice', ['A-1-1'], 'confirmed', { event: id, reservation: `${id}-r1`, outbox: 'unpublished' });
  await pool.query('UPDATE outbox SET topic = $3 WHERE event_id = $1 AND message_key = $2', [id, `${id}-r1`, config.reservationsTopic]);
  await relay(id, `${id}-r1`);
  // carol releases A-1-2; dan's hold of A-1-3 expires, and his DELETE, answered a second before the
  // expiry time by the client's clock (within the slack for skew), is a 204 too.
  await ended(id, 'h2', 'carol', { seats: ['A-1-2'] }, 'released', { created: 0, expires: 10, ended: 3, released: 2 });
  await ended(id, 'h3', 'dan', { seats: ['A-1-3'] }, 'expired', { created: 0, expires: 10, ended: 11 });
  // GA has 4 places: 2 + 2 held at once, and a third hold of 2 taken as the first was released.
  await ended(id, 'p1', 'erin', { pool: 'GA', quantity: 2 }, 'released', { created: 20, expires: 30, ended: 26, released: 25 });
  await ended(id, 'p2', 'fay', { pool: 'GA', quantity: 2 }, 'expired', { created: 20, expires: 30, ended: 31 });
  await ended(id, 'p3', 'gus', { pool: 'GA', quantity: 2 }, 'expired', { created: 25, expires: 35, ended: 36 });
  const h1 = (await pool.query<{ at: Date }>('SELECT confirmed_at AS at FROM reservations WHERE reservation_id = $1', [`${id}-r1`]))
    .rows[0]!.at;
  const log = writeLog(`clean-${id}.jsonl`, [
    lineOf(id, {
      customer: 'alice',
      op: 'hold',
      status: 201,
      seat: 'A-1-1',
      hold: `${id}-h1`,
      seats: ['A-1-1'],
      decidedAt: h1.getTime() - 1,
    }),
    lineOf(id, {
      customer: 'alice',
      op: 'confirm',
      status: 201,
      hold: `${id}-h1`,
      reservation: `${id}-r1`,
      seats: ['A-1-1'],
      decidedAt: h1.getTime(),
    }),
    lineOf(id, { customer: 'bob', op: 'hold', key: 'bob-1', status: 409, seat: 'A-1-1', error: 'seats-unavailable' }),
    lineOf(id, { customer: 'carol', op: 'hold', status: 201, seat: 'A-1-2', hold: `${id}-h2`, seats: ['A-1-2'], decidedAt: decided(0) }),
    lineOf(id, { customer: 'carol', op: 'release', status: 204, hold: `${id}-h2`, at: decided(2) + 5 }),
    lineOf(id, { customer: 'dan', op: 'hold', status: 201, seat: 'A-1-3', hold: `${id}-h3`, seats: ['A-1-3'], decidedAt: decided(0) }),
    lineOf(id, { customer: 'dan', op: 'release', status: 204, hold: `${id}-h3`, at: decided(10) - 1000 }),
    lineOf(id, {
      customer: 'erin',
      op: 'hold-pool',
      status: 201,
      hold: `${id}-p1`,
      seats: [],
      pool: 'GA',
      quantity: 2,
      decidedAt: decided(20),
    }),
    lineOf(id, { customer: 'erin', op: 'release', status: 204, hold: `${id}-p1`, at: decided(25) + 5 }),
    lineOf(id, {
      customer: 'fay',
      op: 'hold-pool',
      status: 201,
      hold: `${id}-p2`,
      seats: [],
      pool: 'GA',
      quantity: 2,
      decidedAt: decided(20),
    }),
    lineOf(id, {
      customer: 'gus',
      op: 'hold-pool',
      status: 201,
      hold: `${id}-p3`,
      seats: [],
      pool: 'GA',
      quantity: 2,
      decidedAt: decided(25),
    }),
  ]);
  // Values on the shared topic that are no reservation (a tombstone, a number, a list): passed over and counted.
  await producer.send({
    topic: config.reservationsTopic,
    messages: [
      { key: `${id}-tombstone`, value: null },
      { key: `${id}-number`, value: '42' },
      { key: `${id}-list`, value: '[1]' },
    ],
  });

  const report = await verify(id, [log]);
  t.equal(report.ok, true, JSON.stringify({ violations: report.violations, not_checked: report.not_checked }, null, 2));
  t.ok(
    report.checks.every((c) => !c.skipped && !c.unchecked),
    'every check was made',
  );
  t.same(report.counts.log?.acknowledged, { holds: 6, reservations: 1, releases: 3 });
  t.equal(report.counts.log?.status['409'], 1);
  t.match(report.counts.topic, { unique: 1, duplicates: 0 });
  t.ok((report.counts.topic?.malformed ?? 0) >= 3, `malformed ${report.counts.topic?.malformed}`);
  t.match(report.counts.inventory.holds, { confirmed: 1, released: 2, expired: 3 });
});

t.test('every acknowledgement is held to Postgres: two answers for one id, and 204s to releases', async (t) => {
  const id = (await provisionTestEvent(pool, { holdTtlMs: HOLD_TTL_MS })).eventId;
  // One reservation told to bob (A-1-2) and to alice (A-1-1); Postgres has it as alice's.
  await hold(`${id}-h1`, 'alice', ['A-1-1'], 'confirmed', { event: id, reservation: `${id}-r1` });
  // dan's hold expired at minute 10; his DELETE was answered 204 at minute 1 (so Postgres lost a
  // release), and eve — not its owner — got a 204 too.
  await ended(id, 'h2', 'dan', { seats: ['A-1-3'] }, 'expired', { created: 0, expires: 10, ended: 10 });
  // frank's DELETE was answered after his hold expired: a 204 for an expired hold, as it should be.
  await ended(id, 'h3', 'frank', { seats: ['A-1-4'] }, 'expired', { created: 0, expires: 10, ended: 10 });
  /** A 201 to a reserve of `seat` that names reservation r1 (of hold h1). */
  const reservedR1 = (customer: string, seat: string) =>
    lineOf(id, { customer, op: 'reserve', status: 201, seat, hold: `${id}-h1`, reservation: `${id}-r1`, seats: [seat], decidedAt: 1 });
  const log = writeLog(`acks-${id}.jsonl`, [
    reservedR1('bob', 'A-1-2'),
    reservedR1('alice', 'A-1-1'),
    lineOf(id, {
      customer: 'dan',
      op: 'hold',
      status: 201,
      seat: 'A-1-3',
      hold: `${id}-h2`,
      seats: ['A-1-3'],
      decidedAt: minute(0).getTime(),
    }),
    lineOf(id, { customer: 'dan', op: 'release', status: 204, hold: `${id}-h2`, at: minute(1).getTime() }),
    lineOf(id, { customer: 'eve', op: 'release', status: 204, hold: `${id}-h2`, at: minute(2).getTime() }),
    lineOf(id, { customer: 'frank', op: 'release', status: 204, hold: `${id}-h3`, at: minute(10).getTime() + 5 }),
  ]);
  const report = await verify(id, [log], { kafka: undefined });
  const messages = messagesOf(report, 'ack-missing');
  t.match(
    messages,
    new RegExp(`reservation ${id}-r1 was acknowledged \\(201\\) differently: to bob \\(seats A-1-2, hold ${id}-h1\\) and to alice`),
  );
  t.match(messages, new RegExp(`reservation ${id}-r1 was answered to bob \\(hold ${id}-h1\\) but is alice's`), 'each answer is checked');
  t.match(messages, new RegExp(`hold ${id}-h2 was released \\(204\\) to dan and eve: it has one owner`));
  t.match(messages, new RegExp(`hold ${id}-h2 was released \\(204 to dan\\) 540000 ms before it expired, but is expired, not released`));
  t.match(messages, new RegExp(`hold ${id}-h2 was released \\(204 to eve\\) but is dan's in event ${id}`));
  t.notMatch(messages, new RegExp(`${id}-h3`), "frank's 204 came after the expiry");
  t.equal(report.counts.violations, 5, JSON.stringify(report.violations, null, 2));
  t.equal(violationCount(report, 'ack-missing'), 5);
});

t.test('a pool over its capacity at some moment is found in the history, after every hold ended', async (t) => {
  const id = (await provisionTestEvent(pool, { holdTtlMs: HOLD_TTL_MS, layout: testLayout({ rows: 2, seats: 10, pool: 4 }) })).eventId;
  // Three holds of 2 places, all live at minutes 5-10 (6 > 4); all expired since, counters at 0.
  await ended(id, 'p1', 'pat', { pool: 'GA', quantity: 2 }, 'expired', { created: 0, expires: 10, ended: 10 });
  await ended(id, 'p2', 'quinn', { pool: 'GA', quantity: 2 }, 'expired', { created: 1, expires: 11, ended: 11 });
  await ended(id, 'p3', 'rob', { pool: 'GA', quantity: 2 }, 'released', { created: 5, expires: 15, ended: 7, released: 6 });
  const report = await verify(id, [], { kafka: undefined });
  t.equal(violationCount(report, 'over-capacity'), 1, messagesOf(report, 'over-capacity'));
  t.match(
    messagesOf(report, 'over-capacity'),
    `pool GA: holds had 6 places at once (at ${minute(5).toISOString()}), more than its capacity 4`,
  );
  t.equal(report.counts.violations, 1, JSON.stringify(report.violations, null, 2));
});

t.test('live holds past their TTL on shards no engine serves: not judged, and said so', async (t) => {
  const id = (await provisionTestEvent(pool, { holdTtlMs: HOLD_TTL_MS })).eventId;
  await hold(`${id}-h1`, 'carol', ['A-1-1'], 'live', { event: id, expiresInMs: -3_600_000 });
  const report = await verify(id, [], { kafka: undefined });
  t.equal(report.counts.violations, 0);
  t.equal(report.counts.inventory.pending_expiry, 1);
  t.same(report.not_checked, ['1 hold past its TTL on shards no engine serves: expiry cannot be judged until an engine owns them']);
  t.same(
    report.checks.filter((c) => c.unchecked).map((c) => c.check),
    ['hold-past-ttl'],
  );
  t.equal(report.ok, false);
  t.equal(verifyExitCode(report), 3);
  // Postgres names an owner, long since: believed when verify cannot see the leases.
  const shard = await shardOf('A-1-1', id);
  await pool.query("UPDATE shards SET owner = 'engine-ghost', claimed_at = now() - interval '1 hour' WHERE event_id = $1 AND shard = $2", [
    id,
    shard,
  ]);
  const named = await verify(id, [], { kafka: undefined });
  t.equal(violationCount(named, 'hold-past-ttl'), 1);
  t.same(named.not_checked, []);
  // With the leases (Redis): an owner named but holding no lease — an engine killed without handing
  // off — serves nothing, and the hold is not judged.
  const redis = createRedis({ url: config.redisUrl, log: silentLogger, name: 'verify-test' });
  await connectRedis(redis);
  t.teardown(() => redis.disconnect());
  const leases = (eventId: string, shardCount: number) => heldShardLeases(redis, eventId, shardCount);
  const dead = await verify(id, [], { kafka: undefined, leases });
  t.equal(violationCount(dead, 'hold-past-ttl'), 0, 'an owner without a lease serves nothing');
  t.equal(dead.counts.inventory.pending_expiry, 1);
  // Once an engine holds the shard's lease, the same hold is a violation.
  await redis.set(shardLeaseKey(id, shard), 'verify-test', 'PX', 60_000);
  const served = await verify(id, [], { kafka: undefined, leases });
  t.equal(violationCount(served, 'hold-past-ttl'), 1);
  t.same(served.not_checked, []);
  // Unless the shard was claimed just now: its new owner expires such holds as it restores.
  await pool.query('UPDATE shards SET claimed_at = now() WHERE event_id = $1 AND shard = $2', [id, shard]);
  const claimed = await verify(id, [], { kafka: undefined, leases });
  t.equal(violationCount(claimed, 'hold-past-ttl'), 0, 'late only from the later of its expiry and the claim');
  // Leases that cannot be read judge nothing, and say so.
  const unread = await verify(id, [], { kafka: undefined, leases: () => Promise.reject(new Error('Redis is down')) });
  t.equal(violationCount(unread, 'hold-past-ttl'), 0);
  t.match(unread.not_checked, [/could not read the shard leases \(Redis is down\)/]);
});
