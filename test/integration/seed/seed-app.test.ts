/**
 * The seed design (src/seed/seed-app.ts) in this process, against the real Postgres, Redis and
 * Kafka, set up as serve.ts sets it up (a pipelined pool, an auto-pipelining Redis client): its
 * answers, the records its winners wait for, its version check, and what its connections keep
 * (named statements, the unlock script by hash). bench-build.test.ts runs the compiled server.
 */
import type { AddressInfo } from 'node:net';
import type { Producer, ProducerRecord } from 'kafkajs';
import type pg from 'pg';
import t, { type Test } from 'tap';
import { createKafka } from '../../../src/adapters/kafka/client.js';
import { createPgPool } from '../../../src/adapters/postgres/pool.js';
import { silentLogger } from '../../../src/log.js';
import {
  connectSeedProducer,
  connectSeedRedis,
  createSeedApp,
  createSeedPool,
  ensureSeedSchema,
  provisionSeedEvent,
  seedOutcome,
} from '../../../src/seed/seed-app.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { testDatabase, waitFor } from '../../support/stack.js';
import { keysToEndOfTopic } from '../../support/topic.js';

const config = testConfig();
const admin = await testDatabase();
t.teardown(() => admin.end());
await ensureSeedSchema(admin);
// The clients made as serve.ts makes the seed's.
const redis = await connectSeedRedis({ url: config.redisUrl, log: silentLogger, name: 'seed-test' });
t.teardown(() => redis.quit());
const topic = uniqueName('seed-test');
const producer = await connectSeedProducer(createKafka({ brokers: config.kafkaBrokers, clientId: 'seed-test', log: silentLogger }), topic);
t.teardown(() => producer.disconnect());

/** A seed app on a port of its own, with the given pool and producer; its counters. */
async function serve(t: Test, pool: pg.Pool, sender: Pick<Producer, 'send'> = producer) {
  const { app, counters } = createSeedApp({ pool, redis, producer: sender, topic, lockTtlMs: 30_000 });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, counters };
}

/** A pool made as serve.ts makes the seed's, under an application name of its own. */
function seedPool(t: Test, max = 4): { pool: pg.Pool; applicationName: string } {
  const applicationName = uniqueName('seed-test');
  const pool = createSeedPool({ url: config.databaseUrl, max, log: silentLogger, applicationName });
  t.teardown(() => pool.end());
  return { pool, applicationName };
}

/** An unsigned token whose subject the seed records (it verifies none). */
const bearer = (subject: string) => `Bearer x.${Buffer.from(JSON.stringify({ sub: subject })).toString('base64url')}.x`;

async function reserve(
  url: string,
  eventId: string,
  seat: string,
  buyer: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/v1/events/${eventId}/seats/${seat}/reserve`, {
    method: 'POST',
    headers: { authorization: bearer(buyer) },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const lockKeys = (eventId: string, seats: readonly string[]) => seats.map((seat) => `seed:lock:${eventId}:${seat}`);

t.test('a crowd on five seats: one 201 per seat, each with its record on the topic, 409 for the rest', async (t) => {
  const { pool } = seedPool(t);
  const { url, counters } = await serve(t, pool);
  const eventId = uniqueName('seed-crowd');
  const seats = ['A-1-1', 'A-1-2', 'A-1-3', 'A-1-4', 'A-1-5'];
  await provisionSeedEvent(admin, eventId, seats);
  const answers = await Promise.all(
    seats.flatMap((seat) =>
      Array.from({ length: 10 }, (_, i) => reserve(url, eventId, seat, `buyer-${seat}-${i}`).then((a) => ({ seat, ...a }))),
    ),
  );
  const winners = answers.filter((a) => a.status === 201);
  t.same(winners.map((w) => w.seat).sort(), seats, 'one buyer gets each seat');
  for (const { seat, body } of winners) {
    t.match(body, { reservationId: /^seed-/, eventId, seats: [seat], quantity: 1, confirmedAt: String });
    t.same(Object.keys(body).sort(), ['confirmedAt', 'eventId', 'quantity', 'reservationId', 'seats']);
  }
  const losers = answers.filter((a) => a.status !== 201);
  t.equal(losers.length, 45, 'everyone else');
  for (const { seat, status, body } of losers) {
    t.equal(status, 409);
    t.match(body, {
      type: 'https://sentinel.dev/problems/seats-unavailable',
      status: 409,
      detail: new RegExp(`^seat ${seat} (is being reserved by someone else|is sold|changed concurrently)$`),
    });
  }
  t.same(await seedOutcome(admin, eventId), { reservations: 5, doubleSold: 0 });
  t.same(
    (await keysToEndOfTopic(topic)).filter((key) => winners.some((w) => w.body['reservationId'] === key)).sort(),
    winners.map((w) => w.body['reservationId']).sort(),
    "every winner's record is on the topic, once",
  );
  t.equal(counters.kafkaSends, 5, 'five records acknowledged');
  t.ok(counters.kafkaRequests >= 1 && counters.kafkaRequests <= 5, `in ${counters.kafkaRequests} produce request(s)`);
  t.equal(counters.errors, 0);
  t.equal(await redis.exists(...lockKeys(eventId, seats)), 0, 'every lock released (the unlock script, by hash)');

  // The statements of a request are prepared on the connections that ran them.
  const client = await pool.connect();
  try {
    t.ok(client.pipeline, 'a pipelined connection, so BEGIN went with the read');
    const { rows } = await client.query<{ name: string }>('SELECT name FROM pg_prepared_statements ORDER BY name');
    t.ok(
      rows.some((r) => r.name === 'seed-read-seat'),
      `a connection of the pool keeps the seat's read prepared (${rows.map((r) => r.name).join(', ')})`,
    );
  } finally {
    client.release();
  }

  // Later buyers: the seat is sold (read in a transaction whose BEGIN went with the read), or unknown.
  t.same(await reserve(url, eventId, 'A-1-1', 'late'), {
    status: 409,
    body: { type: 'https://sentinel.dev/problems/seats-unavailable', status: 409, detail: 'seat A-1-1 is sold' },
  });
  t.same(await reserve(url, eventId, 'Z-9-9', 'lost'), {
    status: 404,
    body: { type: 'https://sentinel.dev/problems/seat-not-found', status: 404, detail: 'no seat Z-9-9' },
  });
  t.equal(await redis.exists(...lockKeys(eventId, ['A-1-1', 'Z-9-9'])), 0, 'their locks released too');
});

t.test('a failed Kafka request fails each of its winners with a 500 and releases their locks', async (t) => {
  const { pool } = seedPool(t);
  const sent: ProducerRecord[] = [];
  const { url, counters } = await serve(t, pool, {
    send: async (record) => {
      sent.push(record);
      throw new Error('broker down');
    },
  });
  const eventId = uniqueName('seed-kafka-down');
  const seats = ['A-1-1', 'A-1-2', 'A-1-3', 'A-1-4'];
  await provisionSeedEvent(admin, eventId, seats);
  const answers = await Promise.all(seats.map((seat, i) => reserve(url, eventId, seat, `buyer-${i}`)));
  for (const answer of answers) {
    t.same(answer, { status: 500, body: { type: 'https://sentinel.dev/problems/internal-error', status: 500, detail: 'broker down' } });
  }
  t.equal(
    sent.reduce((n, record) => n + record.messages.length, 0),
    4,
    `each winner's record was in a request (${sent.length} request(s))`,
  );
  t.equal(counters.errors, 4);
  t.equal(counters.kafkaSends, 0);
  t.same(await seedOutcome(admin, eventId), { reservations: 4, doubleSold: 0 }, 'committed before the send, as the seed commits');
  t.equal(await redis.exists(...lockKeys(eventId, seats)), 0, 'every lock released');
});

t.test("a version changed between the read and the write: 409, the seat's other writer wins", async (t) => {
  const { pool, applicationName } = seedPool(t, 1);
  const { url, counters } = await serve(t, pool);
  const eventId = uniqueName('seed-version');
  await provisionSeedEvent(admin, eventId, ['A-1-1']);
  // Another writer (outside the seed's lock) bumps the version and holds the row until the seed's
  // UPDATE waits for it; the UPDATE then finds the version it read gone.
  const other = await admin.connect();
  try {
    await other.query('BEGIN');
    await other.query(`UPDATE seed.seats SET version = version + 1 WHERE event_id = $1 AND seat_id = 'A-1-1'`, [eventId]);
    const answer = reserve(url, eventId, 'A-1-1', 'buyer');
    await waitFor(
      "the seed's UPDATE waiting for the row",
      async () => {
        const { rows } = await admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [applicationName],
        );
        return rows[0]!.n > 0 || undefined;
      },
      10_000,
      10,
    );
    await other.query('COMMIT');
    t.same(await answer, {
      status: 409,
      body: { type: 'https://sentinel.dev/problems/seats-unavailable', status: 409, detail: 'seat A-1-1 changed concurrently' },
    });
  } finally {
    other.release();
  }
  t.equal(counters.versionConflicts, 1);
  t.same(await seedOutcome(admin, eventId), { reservations: 0, doubleSold: 0 });
  t.equal(await redis.exists(...lockKeys(eventId, ['A-1-1'])), 0, 'the lock released');
  t.equal((await reserve(url, eventId, 'A-1-1', 'next')).status, 201, 'the next buyer gets the seat, on the same connection');
});

t.test('on a pool that is not pipelined, BEGIN is sent on its own and the seat is still sold once', async (t) => {
  const pool = createPgPool({ url: config.databaseUrl, max: 2, log: silentLogger });
  t.teardown(() => pool.end());
  const { url } = await serve(t, pool);
  const eventId = uniqueName('seed-plain');
  await provisionSeedEvent(admin, eventId, ['A-1-1']);
  const statuses = (await Promise.all(Array.from({ length: 10 }, (_, i) => reserve(url, eventId, 'A-1-1', `buyer-${i}`)))).map(
    (a) => a.status,
  );
  t.same(statuses.filter((s) => s === 201).length, 1);
  t.same(statuses.filter((s) => s === 409).length, 9);
  t.same(await seedOutcome(admin, eventId), { reservations: 1, doubleSold: 0 });
});

t.test("provisioning analyzes the seed's seats", async (t) => {
  const before = (await admin.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
  await provisionSeedEvent(admin, uniqueName('seed-analyze'), ['A-1-1', 'A-1-2']);
  const { rows } = await admin.query<{ last_analyze: Date | null }>(
    `SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = 'seed' AND relname = 'seats'`,
  );
  t.ok(
    rows[0]?.last_analyze && rows[0].last_analyze >= before,
    `analyzed at ${String(rows[0]?.last_analyze)}, provisioned at ${before.toISOString()}`,
  );
});
