/**
 * The design Sentinel replaces — the seed's Spring service — rebuilt faithfully as a small Koa app,
 * so the benchmarks can drive both with the same client on the same infrastructure. Per request:
 *
 *   1. a Redis seat lock (`SET lock NX PX ttl`, Redisson's tryLock without waiting): taken → 409 at once;
 *   2. a Postgres transaction with JPA-style optimistic locking: read the seat and its version,
 *      `UPDATE … SET version = version + 1 WHERE version = $seen` (0 rows → 409), insert the reservation;
 *   3. a synchronous Kafka send after the commit (outside the transaction, as the seed's README
 *      describes), then unlock (compare-and-delete, in a finally around it all), then 201.
 *
 * Where a Node library would do more work per request than the Java stack's does, it is set up to do
 * what that stack does: named (server-side prepared) statements and BEGIN sent with the first query
 * (pgjdbc; beginAndReadSeat), the records sent meanwhile in one produce request (the Java producer;
 * createSeedKafkaSend), the unlock script sent by its hash (Redisson; withUnlockCommand), and Redis
 * commands pipelined on one connection (serve.ts).
 *
 * It keeps its own tables in the `seed` schema, so it never touches Sentinel's inventory. It checks no
 * token (the seed had none); it reads the bearer token's subject unverified, only to record the buyer.
 * This is a benchmark baseline, not a part of Sentinel.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Kafka, Message, Producer } from 'kafkajs';
import Koa from 'koa';
import type pg from 'pg';
import { ensureTopic } from '../adapters/kafka/client.js';
import { createPgPool } from '../adapters/postgres/pool.js';
import { connectRedis, createRedis } from '../adapters/redis/client.js';
import { TickBatcher } from '../tick-batcher.js';
import type { Logger } from '../log.js';

/** What the seed app talks to. */
export interface SeedDependencies {
  /** Best made by `createSeedPool`: its connections send BEGIN with the first query, as pgjdbc does. */
  readonly pool: pg.Pool;
  readonly redis: Redis;
  readonly producer: Pick<Producer, 'send'>;
  readonly topic: string;
  /** Lease of a seat lock (Redisson's leaseTime), ms. */
  readonly lockTtlMs: number;
}

/** What the seed did, for the benchmark's table. */
export interface SeedCounters {
  requests: number;
  /** Refused at the Redis lock (someone else held it). */
  lockRefusals: number;
  /** Postgres transactions begun (each reaching step 2). */
  transactions: number;
  /** Seat already sold when read. */
  soldRefusals: number;
  /** Optimistic version check failed at UPDATE. */
  versionConflicts: number;
  reservations: number;
  /** Reservation records the broker acknowledged (one per 201). */
  kafkaSends: number;
  /** Produce requests made for them (acknowledged or not): the records sent during one event-loop turn share one. */
  kafkaRequests: number;
  errors: number;
}

/**
 * The seed's Postgres pool: `createPgPool`'s, with node-postgres's pipeline mode on, so a client
 * writes a query without waiting for the answer to the one before. The seed app uses it for one
 * thing only: to send a transaction's BEGIN together with its first query, in one round trip, as
 * pgjdbc does (it sends BEGIN in the same message batch as the first statement of a transaction).
 * Every other query of a request depends on the answer before it and is awaited, as in Java. Its
 * connections stay open however long they idle, as in HikariCP's default fixed-size pool (idle
 * connections are retired only when `minimumIdle` is below the pool size): a benchmark run after a
 * pause does not open them again inside its measured window.
 */
export function createSeedPool(options: { url: string; max: number; log: Logger; applicationName?: string }): pg.Pool {
  return createPgPool({ ...options, pipeline: true, idleTimeoutMs: 0 });
}

/**
 * The seed's Redis client, connected, with auto-pipelining on, as Sentinel's ingress has it. The
 * Java clients keep many commands in flight: Lettuce (Spring's default) pipelines every thread's
 * commands on one connection without waiting for replies; Redisson, which the seed named, runs one
 * command at a time on each of up to 64 pooled connections. ioredis already keeps every command in
 * flight on its one connection without the option; with it, it also writes the commands issued in
 * one event-loop turn together (the next batch when the previous one is answered), sparing the
 * seed's single thread and Redis a write and a read per command, where Java spreads its writes over
 * Netty's I/O threads. Measured on a rush of 1,000 concurrent lock attempts, mostly refused as in
 * the benchmark's, it answered about 1.5 × as many per second for less CPU in Node and a sixth of it
 * in Redis (on lock and unlock pairs alone, without refusals, it was about even), so off would be
 * the handicap. It changes no answer and no order: each command gets its own reply, and a request's
 * unlock is still issued only after its Kafka acknowledgement.
 */
export async function connectSeedRedis(options: { url: string; log: Logger; name: string }): Promise<Redis> {
  const redis = createRedis({ ...options, autoPipelining: true });
  await connectRedis(redis);
  return redis;
}

/**
 * The seed's producer, connected, its topic made sure of. Plain, acks=all, unlimited requests in
 * flight: the most generous reading of a synchronous KafkaTemplate.send().get(). kafkajs has no
 * accumulator batching records across calls, as the Java producer's has: the seed app collects the
 * records of each event-loop turn into one request itself (createSeedKafkaSend), and each request
 * still awaits its own record.
 */
export async function connectSeedProducer(kafka: Kafka, topic: string): Promise<Producer> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopic(admin, topic);
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  return producer;
}

/** Creates the seed's tables (bench-only; idempotent). */
export async function ensureSeedSchema(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE SCHEMA IF NOT EXISTS seed;
    CREATE TABLE IF NOT EXISTS seed.seats (
      event_id text NOT NULL,
      seat_id  text NOT NULL,
      state    text NOT NULL DEFAULT 'available',
      customer text,
      version  integer NOT NULL DEFAULT 0,
      PRIMARY KEY (event_id, seat_id)
    );
    -- No unique constraint on the seat: the seed relied on its lock and on optimistic locking,
    -- so the benchmark can count double sales if either ever failed.
    CREATE TABLE IF NOT EXISTS seed.reservations (
      reservation_id text PRIMARY KEY,
      event_id       text NOT NULL,
      seat_id        text NOT NULL,
      customer       text NOT NULL,
      created_at     timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS reservations_by_seat ON seed.reservations (event_id, seat_id);`);
}

/** Creates an event's seats in the seed's tables. */
export async function provisionSeedEvent(pool: pg.Pool, eventId: string, seats: readonly string[]): Promise<void> {
  for (let i = 0; i < seats.length; i += 20_000) {
    await pool.query('INSERT INTO seed.seats (event_id, seat_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [
      eventId,
      seats.slice(i, i + 20_000),
    ]);
  }
  // Fresh statistics before the sale, as Sentinel's provisioning takes for its own seats
  // (provisionEvent): the seed's statements are then planned with this event's rows counted, so
  // neither design starts its sale on statistics from before its seats existed. Best effort, as
  // there: the seats are in, and autovacuum analyzes the table soon anyway.
  await pool.query('ANALYZE seed.seats').catch(() => undefined);
}

/** Seats sold more than once, and the number of reservations, of a seed event. */
export async function seedOutcome(pool: pg.Pool, eventId: string): Promise<{ reservations: number; doubleSold: number }> {
  const { rows } = await pool.query<{ reservations: number; double_sold: number }>(
    `SELECT (SELECT count(*)::int FROM seed.reservations WHERE event_id = $1) AS reservations,
            (SELECT count(*)::int FROM (SELECT seat_id FROM seed.reservations WHERE event_id = $1 GROUP BY seat_id HAVING count(*) > 1) d) AS double_sold`,
    [eventId],
  );
  return { reservations: rows[0]?.reservations ?? 0, doubleSold: rows[0]?.double_sold ?? 0 };
}

const UNLOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** The seed's Redis client, with its unlock script defined as a command of its own. */
type SeedRedis = Redis & { seedUnlock(key: string, token: string): Promise<number> };

/**
 * Defines the unlock script on `redis` (once per client): ioredis then sends EVALSHA with the
 * script's hash, and the script's text only the first time on a connection (or after Redis lost
 * it), instead of EVAL with the whole text on every request. Redisson does the same with its own
 * unlock script (its script cache, `useScriptCache`, is on by default since 3.46), and so do
 * Sentinel's scripts (`defineCommand` in the ingress).
 */
function withUnlockCommand(redis: Redis): SeedRedis {
  if (!('seedUnlock' in redis)) redis.defineCommand('seedUnlock', { numberOfKeys: 1, lua: UNLOCK });
  return redis as SeedRedis;
}

/** The named statements of a request: parsed and planned once per connection, then only bound and run. */
const READ_SEAT = 'SELECT state, version FROM seed.seats WHERE event_id = $1 AND seat_id = $2';
const SELL_SEAT = `UPDATE seed.seats SET state = 'sold', customer = $3, version = version + 1 WHERE event_id = $1 AND seat_id = $2 AND version = $4`;
const INSERT_RESERVATION = 'INSERT INTO seed.reservations (reservation_id, event_id, seat_id, customer) VALUES ($1, $2, $3, $4)';

/**
 * Begins the transaction and reads the seat (its state and version, as JPA's `findById` would).
 *
 * pgjdbc keeps a statement prepared on the server once it has run a few times (`prepareThreshold`,
 * 5), so the Java service's statements are parsed and planned once per connection: here they are
 * named statements, which node-postgres prepares on a connection's first use and then only binds.
 *
 * pgjdbc also sends BEGIN in the same message batch as the transaction's first statement: one
 * round trip for both. node-postgres does too on a pipelined connection (`createSeedPool`), where
 * both are written before either is answered. On a connection that is not pipelined it would wait
 * for BEGIN's answer first — one more round trip per request, a cost of node-postgres's default
 * mode that pgjdbc does not pay — so BEGIN is awaited on its own only there.
 */
async function beginAndReadSeat(
  client: pg.PoolClient,
  eventId: string,
  seat: string,
): Promise<{ state: string; version: number } | undefined> {
  const read = { name: 'seed-read-seat', text: READ_SEAT, values: [eventId, seat] };
  if (client.pipeline) {
    // If BEGIN fails, Promise.all rejects before the read is answered; the caller's ROLLBACK is
    // then answered after the read (a connection answers in order), so the client is released idle.
    const [, { rows }] = await Promise.all([client.query('BEGIN'), client.query<{ state: string; version: number }>(read)]);
    return rows[0];
  }
  await client.query('BEGIN');
  return (await client.query<{ state: string; version: number }>(read)).rows[0];
}

/**
 * Largest number of records in one produce request. The Java producer puts at most `batch.size`
 * (16 KiB, its default) of records per partition in a request: some 60 of these records of about
 * 250 bytes each. This cap is about that, and is not reached in practice: no more winners can send
 * in one turn than the Postgres pool has connections (20 in serve.ts).
 */
const KAFKA_MAX_BATCH = 64;

/**
 * The seed's `kafkaTemplate.send(record).get()`: resolves once the broker acknowledged the record
 * (acks=all, the Java producer's default), rejects if the request carrying it failed.
 *
 * The Java producer does not send a request per record: its sender thread drains every record that
 * accumulated meanwhile (per partition, up to `batch.size`) into one produce request per broker,
 * and each caller's future completes when that request is acknowledged. kafkajs has no such
 * accumulator — each `send` is a request of its own — so the records sent during one event-loop
 * turn are collected here (TickBatcher) and sent in one `producer.send`; each caller still awaits
 * its own record's acknowledgement, and a failed request fails every caller whose record it carried.
 */
export function createSeedKafkaSend(
  producer: Pick<Producer, 'send'>,
  topic: string,
  onRequest: () => void = () => undefined,
): (message: Message) => Promise<void> {
  const batcher = new TickBatcher<Message, void>(KAFKA_MAX_BATCH, async (_topic, messages) => {
    onRequest();
    await producer.send({ topic, acks: -1, messages });
    return messages.map(() => undefined);
  });
  return (message) => batcher.add(topic, message);
}

function problem(ctx: Koa.Context, status: number, type: string, detail: string): void {
  ctx.status = status;
  ctx.type = 'application/problem+json';
  ctx.body = { type: `https://sentinel.dev/problems/${type}`, status, detail };
}

/** The subject of a bearer token, read without verifying it (the seed had no authentication). */
function customerOf(authorization: string | undefined): string {
  const payload = authorization?.split(' ')[1]?.split('.')[1];
  if (!payload) return 'anonymous';
  try {
    return String((JSON.parse(Buffer.from(payload, 'base64url').toString()) as { sub?: unknown }).sub ?? 'anonymous');
  } catch {
    return 'anonymous';
  }
}

export function createSeedApp(deps: SeedDependencies): { app: Koa; counters: SeedCounters } {
  const counters: SeedCounters = {
    requests: 0,
    lockRefusals: 0,
    transactions: 0,
    soldRefusals: 0,
    versionConflicts: 0,
    reservations: 0,
    kafkaSends: 0,
    kafkaRequests: 0,
    errors: 0,
  };
  const redis = withUnlockCommand(deps.redis);
  const sendToKafka = createSeedKafkaSend(deps.producer, deps.topic, () => (counters.kafkaRequests += 1));
  const app = new Koa();
  const route = /^\/v1\/events\/([^/]+)\/seats\/([^/]+)\/reserve$/;
  app.use(async (ctx) => {
    if (ctx.method === 'GET' && ctx.path === '/seed/stats') {
      ctx.body = counters;
      return;
    }
    if (ctx.method === 'GET' && (ctx.path === '/readyz' || ctx.path === '/healthz')) {
      ctx.body = { status: 'ok' };
      return;
    }
    const match = ctx.method === 'POST' ? route.exec(ctx.path) : null;
    if (match === null) return problem(ctx, 404, 'not-found', `no route ${ctx.method} ${ctx.path}`);
    counters.requests += 1;
    const eventId = decodeURIComponent(match[1]!);
    const seat = decodeURIComponent(match[2]!);
    const customer = customerOf(ctx.get('authorization'));
    const lockKey = `seed:lock:${eventId}:${seat}`;
    const lockToken = randomUUID();
    try {
      // 1. Fail fast: someone holds the seat's lock.
      if ((await redis.set(lockKey, lockToken, 'PX', deps.lockTtlMs, 'NX')) !== 'OK') {
        counters.lockRefusals += 1;
        return problem(ctx, 409, 'seats-unavailable', `seat ${seat} is being reserved by someone else`);
      }
      try {
        // 2. The transaction, with optimistic locking on the seat's version.
        let reservationId: string;
        const client = await deps.pool.connect();
        counters.transactions += 1;
        try {
          const row = await beginAndReadSeat(client, eventId, seat);
          if (row === undefined || row.state !== 'available') {
            await client.query('ROLLBACK');
            if (row === undefined) return problem(ctx, 404, 'seat-not-found', `no seat ${seat}`);
            counters.soldRefusals += 1;
            return problem(ctx, 409, 'seats-unavailable', `seat ${seat} is sold`);
          }
          const updated = await client.query({ name: 'seed-sell-seat', text: SELL_SEAT, values: [eventId, seat, customer, row.version] });
          if (updated.rowCount !== 1) {
            await client.query('ROLLBACK');
            counters.versionConflicts += 1;
            return problem(ctx, 409, 'seats-unavailable', `seat ${seat} changed concurrently`);
          }
          reservationId = `seed-${randomUUID()}`;
          await client.query({
            name: 'seed-insert-reservation',
            text: INSERT_RESERVATION,
            values: [reservationId, eventId, seat, customer],
          });
          await client.query('COMMIT');
          counters.reservations += 1;
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        } finally {
          client.release();
        }
        // 3. After the commit, outside the transaction: a synchronous Kafka send (this request's
        // record acknowledged, in a request it may share with the records sent meanwhile).
        const confirmedAt = new Date().toISOString();
        await sendToKafka({ key: reservationId, value: JSON.stringify({ eventId, reservationId, seat, customer, confirmedAt }) });
        counters.kafkaSends += 1;
        ctx.status = 201;
        ctx.body = { reservationId, eventId, seats: [seat], quantity: 1, confirmedAt };
      } finally {
        // Unlocked last, as a try/finally around the whole service call would (Redisson's unlock).
        await redis.seedUnlock(lockKey, lockToken);
      }
    } catch (error) {
      counters.errors += 1;
      problem(ctx, 500, 'internal-error', error instanceof Error ? error.message : String(error));
    }
  });
  return { app, counters };
}
