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
 * It keeps its own tables in the `seed` schema, so it never touches Sentinel's inventory. It checks no
 * token (the seed had none); it reads the bearer token's subject unverified, only to record the buyer.
 * This is a benchmark baseline, not a part of Sentinel.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Producer } from 'kafkajs';
import Koa from 'koa';
import type pg from 'pg';

/** What the seed app talks to. */
export interface SeedDependencies {
  readonly pool: pg.Pool;
  readonly redis: Redis;
  readonly producer: Producer;
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
  kafkaSends: number;
  errors: number;
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
    errors: 0,
  };
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
      if ((await deps.redis.set(lockKey, lockToken, 'PX', deps.lockTtlMs, 'NX')) !== 'OK') {
        counters.lockRefusals += 1;
        return problem(ctx, 409, 'seats-unavailable', `seat ${seat} is being reserved by someone else`);
      }
      try {
        // 2. The transaction, with optimistic locking on the seat's version.
        let reservationId: string;
        const client = await deps.pool.connect();
        counters.transactions += 1;
        try {
          await client.query('BEGIN');
          const { rows } = await client.query<{ state: string; version: number }>(
            'SELECT state, version FROM seed.seats WHERE event_id = $1 AND seat_id = $2',
            [eventId, seat],
          );
          const row = rows[0];
          if (row === undefined || row.state !== 'available') {
            await client.query('ROLLBACK');
            if (row === undefined) return problem(ctx, 404, 'seat-not-found', `no seat ${seat}`);
            counters.soldRefusals += 1;
            return problem(ctx, 409, 'seats-unavailable', `seat ${seat} is sold`);
          }
          const updated = await client.query(
            `UPDATE seed.seats SET state = 'sold', customer = $3, version = version + 1 WHERE event_id = $1 AND seat_id = $2 AND version = $4`,
            [eventId, seat, customer, row.version],
          );
          if (updated.rowCount !== 1) {
            await client.query('ROLLBACK');
            counters.versionConflicts += 1;
            return problem(ctx, 409, 'seats-unavailable', `seat ${seat} changed concurrently`);
          }
          reservationId = `seed-${randomUUID()}`;
          await client.query('INSERT INTO seed.reservations (reservation_id, event_id, seat_id, customer) VALUES ($1, $2, $3, $4)', [
            reservationId,
            eventId,
            seat,
            customer,
          ]);
          await client.query('COMMIT');
          counters.reservations += 1;
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        } finally {
          client.release();
        }
        // 3. After the commit, outside the transaction: a synchronous Kafka send.
        const confirmedAt = new Date().toISOString();
        await deps.producer.send({
          topic: deps.topic,
          acks: -1,
          messages: [{ key: reservationId, value: JSON.stringify({ eventId, reservationId, seat, customer, confirmedAt }) }],
        });
        counters.kafkaSends += 1;
        ctx.status = 201;
        ctx.body = { reservationId, eventId, seats: [seat], quantity: 1, confirmedAt };
      } finally {
        // Unlocked last, as a try/finally around the whole service call would (Redisson's unlock).
        await deps.redis.eval(UNLOCK, 1, lockKey, lockToken);
      }
    } catch (error) {
      counters.errors += 1;
      problem(ctx, 500, 'internal-error', error instanceof Error ? error.message : String(error));
    }
  });
  return { app, counters };
}
