/**
 * The invariants as SQL over one event's committed inventory: seats, pools, holds, reservations,
 * per-customer usage and the outbox. Read-only; each query reports rows that break a rule.
 */
import type pg from 'pg';
import { KEPT_PER_CHECK, type Violations } from './violations.js';

/** The event as verify needs it. */
export interface EventFacts {
  readonly id: string;
  readonly customerLimit: number;
  /** The hold TTL now; it may have been edited during the sale (see `longestHoldTtl`). */
  readonly holdTtlMs: number;
  /** Bumped by every edit of the event's settings (provisionEvent) and by its close and archive. */
  readonly version: number;
  readonly status: 'open' | 'closed' | 'archived';
  readonly createdAt: Date;
  readonly shardCount: number;
  /** When the engines' retention last deleted rows of the event (expired idempotency keys, old outbox rows). */
  readonly prunedAt: Date | undefined;
}

/** Counts of the inventory, for the report. */
export interface InventoryCounts {
  readonly seats: { readonly total: number; readonly available: number; readonly held: number; readonly sold: number };
  readonly pools: { readonly capacity: number; readonly held: number; readonly sold: number };
  readonly holds: { readonly live: number; readonly confirmed: number; readonly released: number; readonly expired: number };
  readonly reservations: number;
  readonly customers: number;
  readonly outbox: { readonly rows: number; readonly unpublished: number };
  readonly shards: { readonly total: number; readonly owned: number };
  /**
   * Live holds past TTL + slack on shards nobody serves (expired when a shard is next claimed):
   * invariant 3 cannot be judged for them, so verify reports it as not checked.
   */
  readonly pending_expiry: number;
  /** How late expired holds were ended after their expiry time (ms). */
  readonly expiry_lag_ms: { readonly p99: number; readonly max: number };
}

/** Where checks read: a client holding one consistent snapshot (see `openSnapshot`). */
export interface Reader {
  query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<{ rows: R[] }>;
}

/** Longest a verification query may take: large events on a busy machine scan a lot (ms). */
const QUERY_TIMEOUT_MS = 300_000;

/**
 * A read-only REPEATABLE READ transaction: every check sees the same committed state, so no check
 * can be fooled by a commit that lands between two queries. `close()` ends it.
 */
export async function openSnapshot(pool: pg.Pool): Promise<Reader & { close(): Promise<void> }> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SET LOCAL statement_timeout = ${QUERY_TIMEOUT_MS}`);
  } catch (error) {
    client.release(true);
    throw error;
  }
  return {
    query: async <R extends pg.QueryResultRow>(text: string, values: unknown[]) =>
      client.query<R>({ text, values, query_timeout: QUERY_TIMEOUT_MS } as pg.QueryConfig),
    async close() {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    },
  };
}

export async function eventFacts(pool: pg.Pool, eventId: string): Promise<EventFacts | undefined> {
  const { rows } = await pool.query<{
    id: string;
    customer_limit: number;
    hold_ttl_ms: number;
    version: string;
    status: EventFacts['status'];
    created_at: Date;
    shard_count: number;
    pruned_at: Date | null;
  }>('SELECT id, customer_limit, hold_ttl_ms, version, status, created_at, shard_count, pruned_at FROM events WHERE id = $1', [eventId]);
  const row = rows[0];
  return (
    row && {
      id: row.id,
      customerLimit: row.customer_limit,
      holdTtlMs: row.hold_ttl_ms,
      version: Number(row.version),
      status: row.status,
      createdAt: row.created_at,
      shardCount: row.shard_count,
      prunedAt: row.pruned_at ?? undefined,
    }
  );
}

/**
 * The longest hold TTL an engine accepts (the bound of `holdTtlMs` in src/domain/shard-settings.ts,
 * which provisioning and every engine enforce): no event's holds were ever given longer.
 */
export const MAX_HOLD_TTL_MS = 7 * 86_400_000;

/**
 * The longest TTL any hold of the event can have been given, ms. The events row keeps only the
 * current TTL, and an edit during the sale may have lowered it (holds made before keep their
 * expiry); engines may also decide by the old TTL for a while after an edit. Every edit bumps
 * `version`, as do a close and an archive (one bump each): when no bump can have been an edit, the
 * current TTL is the only one the event ever had. (An archived event may have been closed first:
 * that bump is taken for a possible edit, which only makes the check weaker, never wrong.)
 * Otherwise nothing stored says what the TTL was, and only the bound every engine enforces is sure.
 */
export function longestHoldTtl(event: Pick<EventFacts, 'holdTtlMs' | 'version' | 'status'>): { ms: number; why: string } {
  const edits = event.version - 1 - (event.status === 'open' ? 0 : 1);
  if (edits <= 0) return { ms: event.holdTtlMs, why: `the event's hold TTL, never edited, is ${event.holdTtlMs} ms` };
  return {
    ms: MAX_HOLD_TTL_MS,
    why: `the event was edited (its TTL may have been longer during the sale), and no engine gives a hold more than ${MAX_HOLD_TTL_MS} ms`,
  };
}

const list = (values: readonly unknown[], max = 5) => (values.length > max ? `${values.slice(0, max).join(', ')}, …` : values.join(', '));
const iso = (at: Date) => at.toISOString();

/**
 * Every hold of the event (`$1`) with its lifetime [created_at, until): the span in which it kept
 * its seats or places from everyone else. Times are the engine's decisions (a shard decides in
 * memory, one command at a time, and stamps each hold with the decision's time):
 *  - live and confirmed holds hold on (until = infinity);
 *  - a released hold until the release was decided — the time of the release's idempotency record.
 *    Not `ended_at`: that is when the group commit that wrote the release began, after every
 *    decision of its batch, so a seat released and taken again within one commit window would look
 *    held twice. (`ended_at`, capped at `expires_at`, only stands in if the record is missing.)
 *  - an expired hold until `expires_at`: before any decision at or after that time the shard
 *    expires the holds that are due, so no one could get the seat earlier, and anyone could from
 *    then on. `ended_at` is again later — the commit that wrote the expiry, or a new owner's
 *    restore — and would flag a seat taken in between. (Earlier only for a hold its sale's close
 *    ended, in the commit of that time: then it held on until `ended_at`.)
 * Comparing times across shards or owners assumes engine clocks agree to within a commit (shards)
 * or a hand-off (owners) — see ADR 0007.
 */
const HOLD_LIFETIMES = `WITH released AS (
    SELECT result->>'holdId' AS hold_id, min(created_at) AS at FROM idempotency_keys
     WHERE event_id = $1 AND result->>'type' = 'released' GROUP BY 1
  ), lifetimes AS (
    SELECT h.hold_id, h.customer, h.seats, h.pool_id, h.quantity, h.state, h.created_at,
           CASE WHEN h.state IN ('released', 'expired') THEN least(coalesce(r.at, h.ended_at, h.expires_at), h.expires_at)
                ELSE 'infinity'::timestamptz END AS until
      FROM holds h LEFT JOIN released r USING (hold_id) WHERE h.event_id = $1
  )`;

/**
 * A sweep over the lifetimes of `HOLD_LIFETIMES`, grouped by one of their columns (a customer, a
 * pool): the CTE `usage` (key, at, used) holds how many seats or places (by quantity) the group's
 * holds had at every moment one began or ended.
 */
const peakUsage = (key: 'customer' | 'pool_id') => `${HOLD_LIFETIMES}, steps AS (
    SELECT ${key} AS key, created_at AS at, quantity AS delta FROM lifetimes WHERE ${key} IS NOT NULL
    UNION ALL SELECT ${key}, until, -quantity FROM lifetimes WHERE ${key} IS NOT NULL AND until < 'infinity'
  ), usage AS (
    -- Ends before starts at one instant: a lifetime is [created_at, until).
    SELECT key, at, sum(delta) OVER (PARTITION BY key ORDER BY at, delta ROWS UNBOUNDED PRECEDING)::int AS used FROM steps
  )`;

/**
 * Runs every SQL check of one event; adds what breaks to `violations`. `served`: the shards an
 * engine holds the lease of (VerifyOptions.leases); without it, a shard with an owner named in
 * Postgres is taken for served.
 */
export async function checkInventory(
  db: Reader,
  event: EventFacts,
  violations: Violations,
  ttlSlackMs: number,
  served?: ReadonlySet<number>,
): Promise<InventoryCounts> {
  const id = event.id;
  const q = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = [id]) => (await db.query<R>(sql, params)).rows;

  // Over the event's whole history, not only its final state: two holds of one seat that were both
  // live at some moment break invariant 1 even if both expired since.
  for (const r of await q<{
    seat: string;
    hold_id: string;
    customer: string;
    state: string;
    created_at: Date;
    other: string | null;
    other_customer: string | null;
    other_state: string | null;
    other_created_at: Date | null;
    other_until: Date | null;
  }>(
    `${HOLD_LIFETIMES}, seat_life AS (
       SELECT seat, hold_id, customer, state, created_at, until FROM lifetimes, unnest(seats) AS seat
     ), taken AS (
       -- Sorted by start, a hold overlaps an earlier one exactly when it starts before the latest
       -- end among the holds that started before it.
       SELECT *, max(until) OVER (PARTITION BY seat ORDER BY created_at, hold_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS taken_until
         FROM seat_life
     ), overlapping AS (
       SELECT *, row_number() OVER (ORDER BY seat, created_at, hold_id) AS n FROM taken WHERE taken_until > created_at
     )
     SELECT o.seat, o.hold_id, o.customer, o.state, o.created_at, e.hold_id AS other, e.customer AS other_customer,
            e.state AS other_state, e.created_at AS other_created_at, nullif(e.until, 'infinity') AS other_until
       FROM overlapping o
       LEFT JOIN LATERAL (
         -- Only for the violations whose details are kept: the earlier hold that still held the seat.
         SELECT * FROM seat_life e
          WHERE o.n <= $2 AND e.seat = o.seat AND (e.created_at, e.hold_id) < (o.created_at, o.hold_id) AND e.until > o.created_at
          ORDER BY e.created_at, e.hold_id LIMIT 1) e ON true
      ORDER BY o.n`,
    [id, KEPT_PER_CHECK],
  )) {
    const other =
      r.other === null
        ? 'while an earlier hold still held it'
        : `while ${r.other_state} hold ${r.other} of ${r.other_customer} still held it (from ${iso(r.other_created_at!)} ${
            r.other_until === null ? 'on' : `until ${iso(r.other_until)}`
          })`;
    violations.add(
      'seat-held-twice',
      `seat ${r.seat} was given to ${r.customer} (${r.state} hold ${r.hold_id}) at ${iso(r.created_at)} ${other}`,
    );
  }

  for (const r of await q<{ seat: string; reservations: string[] }>(
    `SELECT seat, array_agg(reservation_id ORDER BY reservation_id) AS reservations FROM reservations, unnest(seats) AS seat
      WHERE event_id = $1 GROUP BY seat HAVING count(*) > 1`,
  )) {
    violations.add('seat-sold-twice', `seat ${r.seat} is sold ${r.reservations.length} times: ${list(r.reservations)}`);
  }

  for (const r of await q<{ seat_id: string; state: string; hold_id: string | null; hold_state: string | null }>(
    `SELECT s.seat_id, s.state, s.hold_id, h.state AS hold_state FROM seats s LEFT JOIN holds h ON h.hold_id = s.hold_id
      WHERE s.event_id = $1 AND NOT (
        (s.state = 'available' AND s.hold_id IS NULL) OR
        (s.state = 'held' AND h.state = 'live' AND s.seat_id = ANY(h.seats)) OR
        (s.state = 'sold' AND h.state = 'confirmed' AND s.seat_id = ANY(h.seats)))`,
  )) {
    violations.add(
      'seat-row-disagrees',
      `seat ${r.seat_id} is ${r.state} with hold ${r.hold_id ?? 'none'} (${r.hold_state ?? 'no such hold'})`,
    );
  }
  for (const r of await q<{ hold_id: string; hold_state: string; seat: string; state: string | null; seat_hold: string | null }>(
    `SELECT h.hold_id, h.state AS hold_state, seat, s.state, s.hold_id AS seat_hold
       FROM holds h CROSS JOIN LATERAL unnest(h.seats) AS seat
       LEFT JOIN seats s ON s.event_id = h.event_id AND s.seat_id = seat
      WHERE h.event_id = $1 AND h.state IN ('live', 'confirmed')
        AND (s.seat_id IS NULL OR s.hold_id IS DISTINCT FROM h.hold_id
             OR s.state <> CASE h.state WHEN 'live' THEN 'held' ELSE 'sold' END)`,
  )) {
    violations.add(
      'seat-row-disagrees',
      `${r.hold_state} hold ${r.hold_id} has seat ${r.seat}, but the seat row is ${r.state ?? 'missing'} with hold ${r.seat_hold ?? 'none'}`,
    );
  }

  // Over history too: places held by holds that have all ended since once exceeded the capacity
  // if, at some moment, the live and confirmed holds of the pool held more than it has.
  for (const r of await q<{ pool_id: string; capacity: number; used: number; at: Date }>(
    `${peakUsage('pool_id')}
     SELECT DISTINCT ON (p.pool_id) p.pool_id, p.capacity, u.used, u.at FROM usage u JOIN pools p ON p.event_id = $1 AND p.pool_id = u.key
      WHERE u.used > p.capacity ORDER BY p.pool_id, u.used DESC, u.at`,
  )) {
    violations.add(
      'over-capacity',
      `pool ${r.pool_id}: holds had ${r.used} places at once (at ${iso(r.at)}), more than its capacity ${r.capacity}`,
    );
  }
  for (const r of await q<{ pool_id: string; capacity: number; held: number; sold: number; reserved: number; holding: number }>(
    `SELECT p.pool_id, p.capacity, p.held, p.sold, coalesce(r.q, 0)::int AS reserved, coalesce(h.q, 0)::int AS holding
       FROM pools p
       LEFT JOIN (SELECT pool_id, sum(quantity) AS q FROM reservations WHERE event_id = $1 AND pool_id IS NOT NULL GROUP BY pool_id) r USING (pool_id)
       LEFT JOIN (SELECT pool_id, sum(quantity) AS q FROM holds WHERE event_id = $1 AND state = 'live' AND pool_id IS NOT NULL GROUP BY pool_id) h USING (pool_id)
      WHERE p.event_id = $1`,
  )) {
    if (r.held + r.sold > r.capacity)
      violations.add('over-capacity', `pool ${r.pool_id}: ${r.held} held + ${r.sold} sold > capacity ${r.capacity}`);
    if (r.reserved > r.capacity)
      violations.add('over-capacity', `pool ${r.pool_id}: reservations hold ${r.reserved} places > capacity ${r.capacity}`);
    if (r.sold !== r.reserved)
      violations.add('over-capacity', `pool ${r.pool_id}: counter says ${r.sold} sold, reservations say ${r.reserved}`);
    if (r.held !== r.holding)
      violations.add('over-capacity', `pool ${r.pool_id}: counter says ${r.held} held, live holds say ${r.holding}`);
  }

  for (const r of await q<{ reservation_id: string; hold_id: string; state: string | null; problem: string }>(
    `SELECT r.reservation_id, r.hold_id, h.state,
            CASE WHEN h.hold_id IS NULL THEN 'its hold does not exist'
                 WHEN h.state <> 'confirmed' THEN 'its hold is ' || h.state
                 WHEN h.reservation_id IS DISTINCT FROM r.reservation_id THEN 'its hold names reservation ' || coalesce(h.reservation_id, 'none')
                 WHEN h.customer <> r.customer THEN 'its hold belongs to ' || h.customer || ', the reservation to ' || r.customer
                 WHEN h.event_id <> r.event_id THEN 'its hold is of event ' || h.event_id
                 WHEN h.quantity <> r.quantity OR h.pool_id IS DISTINCT FROM r.pool_id THEN 'quantity or pool differ from its hold'
                 ELSE 'its seats differ from its hold''s' END AS problem
       FROM reservations r LEFT JOIN holds h ON h.hold_id = r.hold_id
      WHERE r.event_id = $1 AND (h.hold_id IS NULL OR h.state <> 'confirmed' OR h.reservation_id IS DISTINCT FROM r.reservation_id
            OR h.customer <> r.customer OR h.event_id <> r.event_id OR h.quantity <> r.quantity OR h.pool_id IS DISTINCT FROM r.pool_id
            OR NOT (h.seats @> r.seats AND r.seats @> h.seats))`,
  )) {
    violations.add('reservation-disagrees', `reservation ${r.reservation_id} (hold ${r.hold_id}): ${r.problem}`);
  }
  for (const r of await q<{ hold_id: string }>(
    `SELECT h.hold_id FROM holds h WHERE h.event_id = $1 AND h.state = 'confirmed'
        AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.hold_id = h.hold_id)`,
  )) {
    violations.add('reservation-disagrees', `hold ${r.hold_id} is confirmed but has no reservation`);
  }

  for (const r of await q<{ reservation_id: string }>(
    `SELECT r.reservation_id FROM reservations r WHERE r.event_id = $1
        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = $1 AND o.message_key = r.reservation_id)`,
  )) {
    violations.add('outbox-missing', `reservation ${r.reservation_id} has no outbox row: it can never reach Kafka`);
  }

  // Late by the later of its expiry and its shard's last claim: an owner that claimed the shard just
  // now expires such holds as it restores, which may not have landed yet.
  let pendingExpiry = 0;
  for (const r of await q<{ hold_id: string; shard: number; late_ms: number; owned: boolean }>(
    `SELECT h.hold_id, h.shard, sh.owner IS NOT NULL AS owned,
            (extract(epoch FROM now() - greatest(h.expires_at, sh.claimed_at)) * 1000)::float8 AS late_ms
       FROM holds h JOIN shards sh ON sh.event_id = h.event_id AND sh.shard = h.shard
      WHERE h.event_id = $1 AND h.state = 'live'
        AND greatest(h.expires_at, sh.claimed_at) < now() - make_interval(secs => $2::float8 / 1000)`,
    [id, ttlSlackMs],
  )) {
    if (r.owned && (served === undefined || served.has(r.shard))) {
      violations.add(
        'hold-past-ttl',
        `hold ${r.hold_id} on served shard ${r.shard} is still live ${Math.round(r.late_ms)} ms after it expired (or after the shard was claimed)`,
      );
    } else pendingExpiry += 1;
  }
  for (const r of await q<{ reservation_id: string; hold_id: string; late_ms: number }>(
    `SELECT r.reservation_id, h.hold_id, (extract(epoch FROM r.confirmed_at - h.expires_at) * 1000)::float8 AS late_ms
       FROM reservations r JOIN holds h ON h.hold_id = r.hold_id
      WHERE r.event_id = $1 AND r.confirmed_at > h.expires_at + make_interval(secs => $2::float8 / 1000)`,
    [id, ttlSlackMs],
  )) {
    violations.add('hold-past-ttl', `hold ${r.hold_id} was confirmed (${r.reservation_id}) ${Math.round(r.late_ms)} ms after it expired`);
  }
  // An engine decides a hold's expiry as its creation + the TTL it decides by (one clock reading):
  // longer than any TTL the event can have had, and the hold kept its seats past its TTL however
  // it ended. Whole ms: the stored times are rounded to µs.
  const ttl = longestHoldTtl(event);
  for (const r of await q<{ hold_id: string; state: string; created_at: Date; lifetime_ms: number }>(
    `SELECT hold_id, state, created_at, round(extract(epoch FROM expires_at - created_at) * 1000)::float8 AS lifetime_ms
       FROM holds WHERE event_id = $1 AND round(extract(epoch FROM expires_at - created_at) * 1000) > $2::float8
      ORDER BY created_at, hold_id`,
    [id, ttl.ms + ttlSlackMs],
  )) {
    violations.add(
      'hold-longer-than-ttl',
      `${r.state} hold ${r.hold_id} (created ${iso(r.created_at)}) was given ${r.lifetime_ms} ms until its expiry: more than ${ttl.ms} ms + ${ttlSlackMs} ms slack (${ttl.why})`,
    );
  }

  // A sweep over the same lifetimes: the most each customer held or had bought at any one moment
  // (pools by quantity). Compared with the event's current limit: one lowered during the sale also
  // flags what was held, within the old limit, before it was lowered. Across shards the engine
  // enforces the limit where a hold commits (the usage counter), so one customer's hold decided on
  // one shard just before their hold on another ended, yet committed after that end, shows here as
  // an overlap as long as a commit (ADR 0007); a client that waits for each answer never does that.
  for (const r of await q<{ customer: string; used: number; at: Date }>(
    `${peakUsage('customer')}
     SELECT DISTINCT ON (key) key AS customer, used, at FROM usage WHERE used > $2 ORDER BY key, used DESC, at`,
    [id, event.customerLimit],
  )) {
    violations.add(
      'customer-limit',
      `customer ${r.customer} held or had bought ${r.used} seats or places at once (at ${iso(r.at)}); the event's limit is now ${event.customerLimit}` +
        ' (if it was lowered during the sale, what was held before may exceed it)',
    );
  }
  for (const r of await q<{ customer: string; used: number; holding: number }>(
    `SELECT customer, coalesce(u.used, 0)::int AS used, coalesce(h.q, 0)::int AS holding
       FROM (SELECT customer, used FROM customer_usage WHERE event_id = $1) u
       FULL JOIN (SELECT customer, sum(quantity) AS q FROM holds WHERE event_id = $1 AND state IN ('live', 'confirmed') GROUP BY customer) h
       USING (customer)
      WHERE coalesce(u.used, 0) <> coalesce(h.q, 0)`,
  )) {
    violations.add('usage-disagrees', `customer ${r.customer}: usage counter ${r.used}, live + confirmed holds ${r.holding}`);
  }

  const [c] = await q<{
    seats: number;
    available: number;
    held: number;
    sold: number;
    capacity: number;
    pool_held: number;
    pool_sold: number;
    live: number;
    confirmed: number;
    released: number;
    expired: number;
    reservations: number;
    customers: number;
    outbox: number;
    unpublished: number;
    shards: number;
    owned: number;
    lag_p99: number | null;
    lag_max: number | null;
  }>(
    `SELECT s.*, p.*, h.*, r.*, o.*, sh.*, lag.*
       FROM (SELECT count(*)::int AS seats, count(*) FILTER (WHERE state = 'available')::int AS available,
                    count(*) FILTER (WHERE state = 'held')::int AS held, count(*) FILTER (WHERE state = 'sold')::int AS sold
               FROM seats WHERE event_id = $1) s,
            (SELECT coalesce(sum(capacity), 0)::int AS capacity, coalesce(sum(held), 0)::int AS pool_held, coalesce(sum(sold), 0)::int AS pool_sold
               FROM pools WHERE event_id = $1) p,
            (SELECT count(*) FILTER (WHERE state = 'live')::int AS live, count(*) FILTER (WHERE state = 'confirmed')::int AS confirmed,
                    count(*) FILTER (WHERE state = 'released')::int AS released, count(*) FILTER (WHERE state = 'expired')::int AS expired,
                    count(DISTINCT customer)::int AS customers
               FROM holds WHERE event_id = $1) h,
            (SELECT count(*)::int AS reservations FROM reservations WHERE event_id = $1) r,
            (SELECT count(*)::int AS outbox, count(*) FILTER (WHERE published_at IS NULL)::int AS unpublished FROM outbox WHERE event_id = $1) o,
            (SELECT count(*)::int AS shards, count(owner)::int AS owned FROM shards WHERE event_id = $1) sh,
            (SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY lag)::float8 AS lag_p99, max(lag)::float8 AS lag_max
               FROM (SELECT extract(epoch FROM ended_at - expires_at) * 1000 AS lag FROM holds
                      WHERE event_id = $1 AND state = 'expired' AND ended_at >= expires_at) x) lag`,
  );
  const counts = c!;
  return {
    seats: { total: counts.seats, available: counts.available, held: counts.held, sold: counts.sold },
    pools: { capacity: counts.capacity, held: counts.pool_held, sold: counts.pool_sold },
    holds: { live: counts.live, confirmed: counts.confirmed, released: counts.released, expired: counts.expired },
    reservations: counts.reservations,
    customers: counts.customers,
    outbox: { rows: counts.outbox, unpublished: counts.unpublished },
    shards: { total: counts.shards, owned: counts.owned },
    pending_expiry: pendingExpiry,
    expiry_lag_ms: { p99: Math.round(counts.lag_p99 ?? 0), max: Math.round(counts.lag_max ?? 0) },
  };
}
