/**
 * `verify` against a database with planted violations: a double sale, a hold past its TTL, a hold
 * confirmed after it expired, a customer over the limit, broken counters, a reservation without
 * an outbox row, an unknown message on the topic, and a response log that claims what Postgres
 * never saw. Each must be reported under its check; a clean event must pass.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createIdempotentProducer, createKafka } from '../../../src/adapters/kafka/client.js';
import { verifyEvent } from '../../../src/jobs/verify/verify.js';
import type { CheckName } from '../../../src/jobs/verify/violations.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

const config = testConfig();
const pool = await testDatabase();
t.teardown(() => pool.end());
const spec = await provisionTestEvent(pool, { layout: testLayout({ rows: 8, seats: 20, pool: 40 }), customerLimit: 8 });
const clean = await provisionTestEvent(pool);
const ev = spec.eventId;

const shardOf = async (seat: string) =>
  (await pool.query<{ shard: number }>('SELECT shard FROM seats WHERE event_id = $1 AND seat_id = $2', [ev, seat])).rows[0]!.shard;

async function hold(
  id: string,
  customer: string,
  seats: string[],
  state: 'live' | 'confirmed' | 'released',
  options: { expiresInMs?: number; reservation?: string; outbox?: boolean; seatState?: 'held' | 'sold' | null } = {},
): Promise<void> {
  const shard = await shardOf(seats[0]!);
  const expires = options.expiresInMs ?? 600_000;
  await pool.query(
    `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at, ended_at, reservation_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now() - interval '2 hours', now() + make_interval(secs => $8::float8 / 1000),
             CASE WHEN $7 = 'live' THEN NULL ELSE now() END, $9)`,
    [id, ev, shard, customer, seats, seats.length, state, expires, options.reservation ?? null],
  );
  if (options.reservation) {
    await pool.query(
      `INSERT INTO reservations (reservation_id, event_id, hold_id, shard, customer, seats, quantity, confirmed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now() - interval '1 minute')`,
      [options.reservation, ev, id, shard, customer, seats, seats.length],
    );
    if (options.outbox !== false) {
      await pool.query(`INSERT INTO outbox (event_id, topic, message_key, payload, published_at) VALUES ($1, $2, $3, '{}', now())`, [
        ev,
        config.reservationsTopic,
        options.reservation,
      ]);
    }
  }
  const seatState =
    options.seatState === undefined ? (state === 'live' ? 'held' : state === 'confirmed' ? 'sold' : null) : options.seatState;
  if (seatState)
    await pool.query('UPDATE seats SET state = $3, hold_id = $4 WHERE event_id = $1 AND seat_id = ANY($2)', [ev, seats, seatState, id]);
  if (state !== 'released') {
    await pool.query(
      `INSERT INTO customer_usage (event_id, customer, used) VALUES ($1, $2, $3)
       ON CONFLICT (event_id, customer) DO UPDATE SET used = customer_usage.used + excluded.used`,
      [ev, customer, seats.length],
    );
  }
}

// 1. A double sale of A-1-1: two confirmed holds and two reservations; the seat row names the first.
await hold(`${ev}-hA`, 'alice', ['A-1-1'], 'confirmed', { reservation: `${ev}-rA` });
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
await hold(`${ev}-hG`, 'grace', ['A-5-1'], 'confirmed', { reservation: `${ev}-rG`, outbox: false });
// 7. A pool counter that claims sales no reservation explains.
await pool.query("UPDATE pools SET sold = 2 WHERE event_id = $1 AND pool_id = 'GA'", [ev]);
// 8. A reservation whose hold was released.
await hold(`${ev}-hH`, 'heidi', ['A-6-1'], 'released', { reservation: `${ev}-rH` });
// 9. A message on the topic Postgres never heard of.
const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'verify-test', log: silentLogger });
const producer = createIdempotentProducer(kafka);
await producer.connect();
await producer.send({
  topic: config.reservationsTopic,
  messages: [
    {
      key: `${ev}-r-phantom`,
      value: JSON.stringify({ eventId: ev, reservationId: `${ev}-r-phantom`, customer: 'mallory', seats: ['A-8-1'], quantity: 1 }),
    },
  ],
});
await producer.disconnect();
// 10. A response log: a reservation the database never saw, and one seat told sold to two clients.
const dir = mkdtempSync(join(tmpdir(), 'verify-test-'));
const logPath = join(dir, 'run.jsonl');
const line = (r: object) => JSON.stringify({ at: Date.now(), run: 'planted', event: ev, buyer: 0, attempt: 1, ms: 1, ...r });
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
    '',
  ].join('\n'),
);

const verify = (eventId: string, logs: string[] = []) =>
  verifyEvent({
    eventId,
    pool,
    logs,
    kafka: { brokers: config.kafkaBrokers, topic: config.reservationsTopic },
    ttlSlackMs: 2000,
    settleTimeoutMs: 500,
    topicTimeoutMs: 30_000,
    log: silentLogger,
  });

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
  t.match(messages('seat-held-twice'), /seat A-1-1 is in 2 live or confirmed holds/);
  t.match(messages('seat-sold-twice'), /seat A-1-1 is sold 2 times/);
  t.match(
    messages('seat-row-disagrees'),
    new RegExp(`confirmed hold ${ev}-hB has seat A-1-1, but the seat row is sold with hold ${ev}-hA`),
  );
  t.match(messages('hold-past-ttl'), new RegExp(`hold ${ev}-hC on served shard \\d+ is still live \\d+ ms after it expired`));
  t.match(messages('hold-past-ttl'), new RegExp(`hold ${ev}-hD was confirmed \\(${ev}-rD\\) \\d+ ms after it expired`));
  t.match(messages('customer-limit'), /customer erin has 9 seats held or bought; the limit is 8/);
  t.match(messages('usage-disagrees'), /customer frank: usage counter 3, live \+ confirmed holds 0/);
  t.match(messages('outbox-missing'), new RegExp(`reservation ${ev}-rG has no outbox row`));
  t.match(messages('over-capacity'), /pool GA: counter says 2 sold, reservations say 0/);
  t.match(messages('reservation-disagrees'), new RegExp(`reservation ${ev}-rH \\(hold ${ev}-hH\\): its hold is released`));
  t.equal(count('topic-missing'), 5, 'none of the five planted reservations reached the topic');
  t.match(messages('topic-unknown'), new RegExp(`message ${ev}-r-phantom on the topic names a reservation Postgres does not have`));
  t.match(messages('ack-missing'), new RegExp(`reservation ${ev}-r-ghost1 \\(201 to ivan\\) is not in the database`));
  t.match(messages('ack-missing'), new RegExp(`hold ${ev}-hE was released \\(204\\) but is live`));
  t.match(messages('client-double-sale'), /seat A-7-1 was sold to ivan .* and to judy/);
  t.equal(report.counts.topic?.messages, 1);
  t.equal(report.counts.log?.acknowledged.reservations, 3);
  t.equal(report.counts.inventory.reservations, 5);
  t.ok(
    report.checks.every((c) => c.violations > 0),
    'every check caught its plant',
  );
});

t.test('a clean event passes', async (t) => {
  const report = await verify(clean.eventId);
  t.equal(report.ok, true, JSON.stringify(report.violations));
  t.equal(report.counts.inventory.seats.total, 160);
  t.ok(report.checks.filter((c) => c.skipped).every((c) => c.check === 'ack-missing' || c.check === 'client-double-sale'));
});

t.test('the CLI exits 1 on violations, 0 when clean, 2 for an unknown event', async (t) => {
  const run = promisify(execFile);
  const cli = (args: string[]) =>
    run(process.execPath, ['bin/sentinel.js', 'verify', ...args], { env: process.env }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
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
