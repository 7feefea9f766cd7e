import type pg from 'pg';
import type { HoldView, ReservationView, SeatState, ShardResult } from '../../domain/commands.js';
import type { BatchWrite } from '../../engine/batch-write.js';
import { FencedError } from '../../errors.js';
import { inTransaction } from './pool.js';

/** A row of `reservations`, as the ingress and `verify` read it. */
export interface ReservationRow {
  reservation_id: string;
  event_id: string;
  hold_id: string;
  customer: string;
  seats: string[];
  pool_id: string | null;
  quantity: number;
  confirmed_at: Date;
}

/** An event's settings as stored, and as the engine needs them to run its shards. */
export interface StoredEvent {
  readonly id: string;
  readonly displayName: string;
  readonly layout: unknown;
  readonly layoutHash: string;
  readonly shardCount: number;
  readonly holdTtlMs: number;
  readonly customerLimit: number;
  readonly admissionRate: number;
  readonly saleOpensAt: Date;
  readonly saleClosesAt: Date;
  readonly status: 'open' | 'closed' | 'archived';
  readonly version: number;
}

/** A shard's persisted state, as rows, for the engine to rebuild its actor from. */
export interface ShardRows {
  readonly seats: { id: string; state: SeatState; holdId: string | null; version: number }[];
  readonly pools: { id: string; capacity: number; held: number; sold: number; version: number }[];
  readonly liveHolds: HoldView[];
  /** Seats/places each customer bought in this shard. */
  readonly reservedByCustomer: { customer: string; quantity: number }[];
  readonly idempotency: { key: string; customer: string; fingerprint: string; result: ShardResult; at: number }[];
  /** Holds that ended recently, so late confirms answer hold-expired / hold-confirmed. */
  readonly endedHolds: {
    holdId: string;
    customer: string;
    outcome: 'released' | 'expired' | 'confirmed';
    reservationId?: string;
    at: number;
  }[];
}

/** Raised when an event-wide per-customer limit rejects some customers' new holds in a batch. */
export interface UsageCheck {
  /** Customers whose positive usage delta would break the limit, with what they use now. */
  readonly refused: Map<string, number>;
}

interface EventRow {
  id: string;
  display_name: string;
  layout: unknown;
  layout_hash: string;
  shard_count: number;
  hold_ttl_ms: number;
  customer_limit: number;
  admission_rate: number;
  sale_opens_at: Date;
  sale_closes_at: Date;
  status: 'open' | 'closed' | 'archived';
  version: string;
}

export function eventFromRow(row: EventRow): StoredEvent {
  return {
    id: row.id,
    displayName: row.display_name,
    layout: row.layout,
    layoutHash: row.layout_hash,
    shardCount: row.shard_count,
    holdTtlMs: row.hold_ttl_ms,
    customerLimit: row.customer_limit,
    admissionRate: row.admission_rate,
    saleOpensAt: row.sale_opens_at,
    saleClosesAt: row.sale_closes_at,
    status: row.status,
    version: Number(row.version),
  };
}

/** A group commit's seat changes: ($1 event, then per seat: id, state, hold, version before, version after). */
export const WRITE_SEATS_SQL = `UPDATE seats s SET state = v.state, hold_id = v.hold_id, version = v.to_version
   FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::int[]) AS v(seat_id, state, hold_id, from_version, to_version)
  WHERE s.event_id = $1 AND s.seat_id = v.seat_id AND s.version = v.from_version`;

/**
 * A group commit's changes to the event-wide usage counters, in one statement ($1 event, $2
 * customers, $3 their net deltas, none zero, $4 the limit). Growth is applied only within
 * the limit (a refused customer's row is left as it was, and is not returned); shrinking always
 * applies. Every shard writes these rows, so every commit locks them in one pass in customer
 * order: two commits can wait for each other but never deadlock (ON CONFLICT DO UPDATE locks a
 * row even when its WHERE refuses the update). A new row is inserted with the growth; for a
 * shrink, `excluded.used` is 0 and the delta is read back from the arrays.
 */
const APPLY_USAGE_SQL = `INSERT INTO customer_usage AS c (event_id, customer, used)
   SELECT $1, u.customer, GREATEST(u.delta, 0) FROM unnest($2::text[], $3::int[]) AS u(customer, delta)
    WHERE u.delta <= $4
    ORDER BY u.customer
 ON CONFLICT (event_id, customer) DO UPDATE
   SET used = CASE WHEN excluded.used > 0 THEN c.used + excluded.used
                   ELSE GREATEST(0, c.used + ($3::int[])[array_position($2::text[], excluded.customer)]) END
   WHERE excluded.used = 0 OR c.used + excluded.used <= $4
 RETURNING c.customer`;

/**
 * Runs one of the group commit's statements as a named prepared statement: parsed and planned
 * once per connection instead of on every commit.
 */
function run<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.PoolClient,
  name: string,
  text: string,
  values: unknown[],
): Promise<pg.QueryResult<R>> {
  return client.query<R>({ name: `sentinel-${name}`, text, values });
}

/** The Postgres side of inventory: events, shard claims (fencing), shard loads and group commits. */
export class InventoryStore {
  constructor(private readonly pool: pg.Pool) {}

  async getEvent(eventId: string): Promise<StoredEvent | undefined> {
    const { rows } = await this.pool.query<EventRow>('SELECT * FROM events WHERE id = $1', [eventId]);
    return rows[0] ? eventFromRow(rows[0]) : undefined;
  }

  /** Events whose sale is open now (status open, inside the sale window). */
  async eventsOnSale(now: Date): Promise<StoredEvent[]> {
    const { rows } = await this.pool.query<EventRow>(
      `SELECT * FROM events WHERE status = 'open' AND sale_opens_at <= $1 AND sale_closes_at > $1 ORDER BY id`,
      [now],
    );
    return rows.map(eventFromRow);
  }

  /**
   * Claims a shard: bumps its epoch (the fencing token) and records the owner. From the moment
   * this commits, any commit of a previous owner matches no row and is rejected.
   */
  async claimShard(eventId: string, shard: number, owner: string): Promise<number> {
    const { rows } = await this.pool.query<{ epoch: string }>(
      `UPDATE shards SET epoch = epoch + 1, owner = $3, claimed_at = now(), version = version + 1
        WHERE event_id = $1 AND shard = $2 RETURNING epoch`,
      [eventId, shard, owner],
    );
    if (!rows[0]) throw new FencedError(`shard ${eventId}/${shard} does not exist`);
    return Number(rows[0].epoch);
  }

  /** Clears the owner on a clean hand-off, if the epoch is still ours. */
  async releaseShard(eventId: string, shard: number, epoch: number): Promise<void> {
    await this.pool.query(`UPDATE shards SET owner = NULL, version = version + 1 WHERE event_id = $1 AND shard = $2 AND epoch = $3`, [
      eventId,
      shard,
      epoch,
    ]);
  }

  /** Reads everything a shard actor needs, in one snapshot-consistent transaction. */
  async loadShard(eventId: string, shard: number, idempotencySince: Date): Promise<ShardRows> {
    return inTransaction(this.pool, `load shard ${eventId}/${shard}`, async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const seats = await client.query<{ seat_id: string; state: SeatState; hold_id: string | null; version: number }>(
        'SELECT seat_id, state, hold_id, version FROM seats WHERE event_id = $1 AND shard = $2',
        [eventId, shard],
      );
      const pools = await client.query<{ pool_id: string; capacity: number; held: number; sold: number; version: number }>(
        'SELECT pool_id, capacity, held, sold, version FROM pools WHERE event_id = $1 AND shard = $2',
        [eventId, shard],
      );
      const holds = await client.query<{
        hold_id: string;
        customer: string;
        seats: string[];
        pool_id: string | null;
        quantity: number;
        created_at: Date;
        expires_at: Date;
      }>(
        `SELECT hold_id, customer, seats, pool_id, quantity, created_at, expires_at FROM holds
          WHERE event_id = $1 AND shard = $2 AND state = 'live'`,
        [eventId, shard],
      );
      const reserved = await client.query<{ customer: string; quantity: string }>(
        `SELECT customer, sum(quantity) AS quantity FROM reservations WHERE event_id = $1 AND shard = $2 GROUP BY customer`,
        [eventId, shard],
      );
      const keys = await client.query<{ key: string; customer: string; fingerprint: string; result: ShardResult; created_at: Date }>(
        `SELECT key, customer, fingerprint, result, created_at FROM idempotency_keys
          WHERE event_id = $1 AND shard = $2 AND created_at >= $3`,
        [eventId, shard, idempotencySince],
      );
      const ended = await client.query<{
        hold_id: string;
        customer: string;
        state: 'released' | 'expired' | 'confirmed';
        reservation_id: string | null;
        ended_at: Date;
      }>(
        `SELECT hold_id, customer, state, reservation_id, ended_at FROM holds
          WHERE event_id = $1 AND shard = $2 AND state <> 'live' AND ended_at >= $3 ORDER BY ended_at DESC LIMIT 200000`,
        [eventId, shard, idempotencySince],
      );
      return {
        endedHolds: ended.rows.map((r) => ({
          holdId: r.hold_id,
          customer: r.customer,
          outcome: r.state,
          ...(r.reservation_id ? { reservationId: r.reservation_id } : {}),
          at: r.ended_at.getTime(),
        })),
        seats: seats.rows.map((r) => ({ id: r.seat_id, state: r.state, holdId: r.hold_id, version: r.version })),
        pools: pools.rows.map((r) => ({ id: r.pool_id, capacity: r.capacity, held: r.held, sold: r.sold, version: r.version })),
        liveHolds: holds.rows.map((r) => ({
          holdId: r.hold_id,
          customer: r.customer,
          seats: r.seats,
          ...(r.pool_id ? { pool: r.pool_id } : {}),
          quantity: r.quantity,
          createdAt: r.created_at.getTime(),
          expiresAt: r.expires_at.getTime(),
        })),
        reservedByCustomer: reserved.rows.map((r) => ({ customer: r.customer, quantity: Number(r.quantity) })),
        idempotency: keys.rows.map((r) => ({
          key: r.key,
          customer: r.customer,
          fingerprint: r.fingerprint,
          result: r.result,
          at: r.created_at.getTime(),
        })),
      };
    });
  }

  /**
   * Step one of a group commit, inside its transaction: the fencing check, then the event-wide
   * per-customer usage. Throws FencedError if the epoch moved on. Returns the customers whose new
   * holds would break the limit; their usage is left unchanged, everyone else's is applied.
   */
  async fenceAndCheckUsage(
    client: pg.PoolClient,
    eventId: string,
    shard: number,
    epoch: number,
    usage: Map<string, number>,
    limit: number,
  ): Promise<UsageCheck> {
    const fence = await run(client, 'fence', 'UPDATE shards SET version = version + 1 WHERE event_id = $1 AND shard = $2 AND epoch = $3', [
      eventId,
      shard,
      epoch,
    ]);
    if (fence.rowCount !== 1) throw new FencedError(`shard ${eventId}/${shard}: epoch ${epoch} is no longer current`);
    const changes = [...usage].filter(([, delta]) => delta !== 0);
    const refused = new Map<string, number>();
    if (changes.length > 0) {
      const { rows } = await run<{ customer: string }>(client, 'usage-apply', APPLY_USAGE_SQL, [
        eventId,
        changes.map(([c]) => c),
        changes.map(([, d]) => d),
        limit,
      ]);
      const applied = new Set(rows.map((r) => r.customer));
      for (const [customer] of changes) if (!applied.has(customer)) refused.set(customer, 0);
      if (refused.size > 0) {
        const current = await client.query<{ customer: string; used: number }>(
          'SELECT customer, used FROM customer_usage WHERE event_id = $1 AND customer = ANY($2)',
          [eventId, [...refused.keys()]],
        );
        for (const row of current.rows) refused.set(row.customer, row.used);
      }
    }
    return { refused };
  }

  /**
   * Applies negative usage deltas (holds released or expired) of customers whose growth the same
   * commit refused. `fenceAndCheckUsage` has locked their rows already — unless a customer's growth
   * alone exceeded the limit (never sent to Postgres): only then is a lock taken out of order, and
   * a deadlock there is detected by Postgres and fails the commit, which the callers retry.
   */
  async shrinkUsage(client: pg.PoolClient, eventId: string, usage: Map<string, number>): Promise<void> {
    const entries = [...usage].filter(([, d]) => d < 0);
    if (entries.length === 0) return;
    await run(
      client,
      'usage-shrink',
      `UPDATE customer_usage c SET used = GREATEST(0, c.used + u.delta)
         FROM unnest($2::text[], $3::int[]) AS u(customer, delta)
        WHERE c.event_id = $1 AND c.customer = u.customer`,
      [eventId, entries.map(([c]) => c), entries.map(([, d]) => d)],
    );
  }

  /**
   * Step two of a group commit: every row the batch changed, each write versioned. A seat or pool
   * whose version is not the one the shard last saw means someone else wrote it: the whole
   * transaction is refused as fenced (the last fail-safe behind the epoch check).
   */
  async writeBatch(client: pg.PoolClient, eventId: string, shard: number, batch: BatchWrite, topic: string): Promise<void> {
    const fenced = (what: string) =>
      new FencedError(`shard ${eventId}/${shard}: ${what} changed underneath (optimistic version check failed)`);
    if (batch.seats.size > 0) {
      const seats = [...batch.seats.values()];
      const result = await run(client, 'write-seats', WRITE_SEATS_SQL, [
        eventId,
        seats.map((s) => s.seat),
        seats.map((s) => s.state),
        seats.map((s) => s.holdId),
        seats.map((s) => s.fromVersion),
        seats.map((s) => s.toVersion),
      ]);
      if (result.rowCount !== seats.length) throw fenced('a seat');
    }
    if (batch.pools.size > 0) {
      const pools = [...batch.pools.values()];
      const result = await run(
        client,
        'write-pools',
        `UPDATE pools p SET held = v.held, sold = v.sold, version = v.to_version
           FROM unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[]) AS v(pool_id, held, sold, from_version, to_version)
          WHERE p.event_id = $1 AND p.pool_id = v.pool_id AND p.version = v.from_version`,
        [
          eventId,
          pools.map((p) => p.pool),
          pools.map((p) => p.held),
          pools.map((p) => p.sold),
          pools.map((p) => p.fromVersion),
          pools.map((p) => p.toVersion),
        ],
      );
      if (result.rowCount !== pools.length) throw fenced('a pool');
    }
    const created = [...batch.holds.values()].filter((h) => h.created);
    if (created.length > 0) {
      const holds = created.map((h) => h.created as HoldView);
      await run(
        client,
        'write-holds-created',
        `INSERT INTO holds (hold_id, event_id, shard, customer, seats, pool_id, quantity, state, created_at, expires_at, ended_at, reservation_id)
         SELECT v.hold_id, $1, $2, v.customer, string_to_array(v.seats, ','), v.pool_id, v.quantity, v.state,
                to_timestamp(v.created_at / 1000.0), to_timestamp(v.expires_at / 1000.0),
                CASE WHEN v.ended_at IS NULL THEN NULL ELSE to_timestamp(v.ended_at / 1000.0) END, v.reservation_id
           FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::float8[], $10::float8[], $11::float8[], $12::text[])
             AS v(hold_id, customer, seats, pool_id, quantity, state, created_at, expires_at, ended_at, reservation_id)`,
        [
          eventId,
          shard,
          holds.map((h) => h.holdId),
          holds.map((h) => h.customer),
          // Seat ids never contain ',' (validated layout ids), so a joined list is a safe, cheap encoding.
          holds.map((h) => h.seats.join(',')),
          holds.map((h) => h.pool ?? null),
          holds.map((h) => h.quantity),
          created.map((h) => (h.reservationId ? 'confirmed' : (h.ended?.reason ?? 'live'))),
          holds.map((h) => h.createdAt),
          holds.map((h) => h.expiresAt),
          created.map((h) => h.ended?.at ?? h.confirmedAt ?? null),
          created.map((h) => h.reservationId ?? null),
        ],
      );
    }
    const updated = [...batch.holds.values()].filter((h) => !h.created && (h.ended || h.reservationId));
    if (updated.length > 0) {
      const result = await run(
        client,
        'write-holds-ended',
        `UPDATE holds h SET state = v.state, ended_at = to_timestamp(v.ended_at / 1000.0), reservation_id = v.reservation_id
           FROM unnest($2::text[], $3::text[], $4::float8[], $5::text[]) AS v(hold_id, state, ended_at, reservation_id)
          WHERE h.event_id = $1 AND h.hold_id = v.hold_id AND h.state = 'live'`,
        [
          eventId,
          updated.map((h) => h.holdId),
          updated.map((h) => (h.reservationId ? 'confirmed' : (h.ended?.reason ?? 'live'))),
          updated.map((h) => h.ended?.at ?? h.confirmedAt ?? null),
          updated.map((h) => h.reservationId ?? null),
        ],
      );
      if (result.rowCount !== updated.length) throw fenced('a hold');
    }
    if (batch.reservations.length > 0) {
      const reservations: ReservationView[] = batch.reservations;
      await run(
        client,
        'write-reservations',
        `INSERT INTO reservations (reservation_id, event_id, hold_id, shard, customer, seats, pool_id, quantity, confirmed_at)
         SELECT v.reservation_id, $1, v.hold_id, $2, v.customer, string_to_array(v.seats, ','), v.pool_id, v.quantity,
                to_timestamp(v.confirmed_at / 1000.0)
           FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::float8[])
             AS v(reservation_id, hold_id, customer, seats, pool_id, quantity, confirmed_at)`,
        [
          eventId,
          shard,
          reservations.map((r) => r.reservationId),
          reservations.map((r) => r.holdId),
          reservations.map((r) => r.customer),
          reservations.map((r) => r.seats.join(',')),
          reservations.map((r) => r.pool ?? null),
          reservations.map((r) => r.quantity),
          reservations.map((r) => r.confirmedAt),
        ],
      );
      await run(
        client,
        'write-outbox',
        `INSERT INTO outbox (event_id, topic, message_key, payload)
         SELECT $1, $2, v.key, v.payload FROM unnest($3::text[], $4::jsonb[]) AS v(key, payload)`,
        [
          eventId,
          topic,
          reservations.map((r) => r.reservationId),
          reservations.map((r) => JSON.stringify({ type: 'reservation.confirmed', eventId, shard, ...r })),
        ],
      );
    }
    if (batch.idempotency.length > 0) {
      await run(
        client,
        'write-idempotency',
        `INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
         SELECT $1, $2, v.key, v.customer, v.fingerprint, v.result, to_timestamp(v.at / 1000.0)
           FROM unnest($3::text[], $4::text[], $5::text[], $6::jsonb[], $7::float8[]) AS v(key, customer, fingerprint, result, at)
         ON CONFLICT DO NOTHING`,
        [
          eventId,
          shard,
          batch.idempotency.map((i) => i.key),
          batch.idempotency.map((i) => i.customer),
          batch.idempotency.map((i) => i.fingerprint),
          batch.idempotency.map((i) => JSON.stringify(i.result)),
          batch.idempotency.map((i) => i.at),
        ],
      );
    }
  }
}
