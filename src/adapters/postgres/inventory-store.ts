import type pg from 'pg';
import type { HoldView, SeatState, ShardResult } from '../../domain/commands.js';
import type { ShardRef } from '../../engine/assignment.js';
import type { BatchWrite, HoldWrite } from '../../engine/batch-write.js';
import { FencedError, VersionConflictError } from '../../errors.js';
import { translatePgError } from './errors.js';
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
  /** When the row last changed — a close or an archive among others (absent where not read). */
  readonly updatedAt?: Date;
}

/**
 * A shard's seats (`$1` event, `$2` shard), each sold one with its buyer: the customer of the hold
 * it was sold through, which the shard names with the seat in a refusal (`soldTo`). The buyer is
 * looked up by the hold's primary key, for sold seats only, in a scalar subquery: unlike a join,
 * the planner never turns that into a hash of the whole holds table — every event's — whatever
 * its statistics say (ADR 0008, decision 9; a LEFT JOIN was planned exactly so).
 */
export const LOAD_SEATS_SQL = `SELECT s.seat_id, s.state, s.hold_id, s.version,
       CASE WHEN s.state = 'sold' THEN (SELECT h.customer FROM holds h WHERE h.hold_id = s.hold_id) END AS buyer
  FROM seats s WHERE s.event_id = $1 AND s.shard = $2`;

/** A shard's persisted state, as rows, for the engine to rebuild its actor from. */
export interface ShardRows {
  /** `buyer`: the customer of the hold a sold seat was sold through (absent for other seats). */
  readonly seats: { id: string; state: SeatState; holdId: string | null; version: number; buyer?: string }[];
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
  updated_at: Date;
}

/** SQL: the sale of event row `e` is over at `now` (a parameter; closed, archived, or past its close). */
/** Whether the event sells at `now` (epoch ms): open, and inside its sale window — as `eventsOnSale` selects. */
export function saleState(event: StoredEvent, now: number): 'open' | 'not-yet-open' | 'closed' {
  if (event.status !== 'open' || now >= event.saleClosesAt.getTime()) return 'closed';
  if (now < event.saleOpensAt.getTime()) return 'not-yet-open';
  return 'open';
}

const saleOver = (now: string) => `(e.status <> 'open' OR e.sale_closes_at <= ${now})`;

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
    updatedAt: row.updated_at,
  };
}

/** The errors `sentinel_commit_batch` raises (migrations/0002_commit_batch.sql; `sentinel_commit_shards`, 0010_commit_shards.sql, raises them for several shards at once; the current bodies of both are in 0017_commit_linear_ends.sql, SNVER since 0015). */
const COMMIT_FENCED = 'SNFEN';
const COMMIT_LIMIT_REFUSED = 'SNLIM';
/** A row the commit writes changed underneath, the epoch still current (SNFEN until 0015_commit_version_conflict.sql). */
const COMMIT_VERSION_CONFLICT = 'SNVER';
/**
 * The code of an error Postgres answered a statement with (the driver's own, such as ECONNRESET,
 * are longer) — except those that end the connection or the server (class 08, 57P01–57P05: an
 * administrator's or a crash's termination), which can come after the transaction committed.
 */
const STATEMENT_REFUSED = /^(?!08|57P0)[0-9A-Z]{5}$/;

/**
 * A shard's holds ended since $3, newest first, as its rebuild reads them ($1 the event, $2 the
 * shard); exported for the test that holds it to its index (migration 0011).
 */
export const ENDED_HOLDS_QUERY = `SELECT hold_id, customer, state, reservation_id, ended_at FROM holds
  WHERE event_id = $1 AND shard = $2 AND state <> 'live' AND ended_at >= $3 ORDER BY ended_at DESC LIMIT 200000`;

/** What a claim needs of the claimer's shard lease (`ShardLease`). */
export interface ClaimLease {
  /** Epoch ms the lease runs out unless extended. */
  readonly expiresAt: number;
  /** Whether it is held now (a lease found run out is given up). */
  holdOrLose(): boolean;
}

/** How much of the lease a claim leaves unused: the commit must land before the lease can run out (ms). */
const CLAIM_MARGIN_MS = 250;

/** One shard's part of a commit of several (`InventoryStore.commitShards`). */
export interface ShardCommit {
  readonly shard: number;
  readonly epoch: number;
  readonly batch: BatchWrite;
}

/** The rows of a commit document: one array per table (see 0002_commit_batch.sql). */
type CommitRows = Record<'usage' | 'seats' | 'pools' | 'created' | 'ended' | 'reservations' | 'idempotency', object[]>;

/** The JSON document `sentinel_commit_batch` reads: a batch's net changes, one array per table. */
export function commitDocument(batch: BatchWrite, eventId: string, shard: number): string {
  return JSON.stringify(commitRows(batch, eventId, shard));
}

/**
 * The document `sentinel_commit_shards` reads (0010_commit_shards.sql): every part's rows, and the
 * shards to fence, in shard order (the order their rows are locked in).
 */
export function shardsDocument(parts: readonly ShardCommit[], eventId: string): string {
  const sorted = [...parts].sort((a, b) => a.shard - b.shard);
  const all: CommitRows = { usage: [], seats: [], pools: [], created: [], ended: [], reservations: [], idempotency: [] };
  for (const { batch, shard } of sorted) {
    const rows = commitRows(batch, eventId, shard);
    for (const table of Object.keys(all) as (keyof CommitRows)[]) for (const row of rows[table]) all[table].push(row);
  }
  return JSON.stringify({ fence: sorted.map(({ shard, epoch }) => ({ shard, epoch })), ...all });
}

/** A batch's rows; those of tables keyed by shard name theirs (`sentinel_commit_batch` ignores it). */
function commitRows(batch: BatchWrite, eventId: string, shard: number): CommitRows {
  const holds = [...batch.holds.values()];
  const stateOf = (h: HoldWrite) => (h.reservationId ? 'confirmed' : (h.ended?.reason ?? 'live'));
  return {
    usage: [...batch.usage].filter(([, delta]) => delta !== 0).map(([customer, delta]) => ({ customer, delta })),
    seats: [...batch.seats.values()].map((s) => ({
      seat_id: s.seat,
      state: s.state,
      hold_id: s.holdId,
      from_version: s.fromVersion,
      to_version: s.toVersion,
    })),
    pools: [...batch.pools.values()].map((p) => ({
      pool_id: p.pool,
      held: p.held,
      sold: p.sold,
      from_version: p.fromVersion,
      to_version: p.toVersion,
    })),
    created: holds.flatMap((h) =>
      h.created
        ? [
            {
              hold_id: h.holdId,
              shard,
              customer: h.created.customer,
              seats: h.created.seats,
              pool_id: h.created.pool ?? null,
              quantity: h.created.quantity,
              state: stateOf(h),
              created_at: h.created.createdAt,
              expires_at: h.created.expiresAt,
              ended_at: h.ended?.at ?? h.confirmedAt ?? null,
              reservation_id: h.reservationId ?? null,
            },
          ]
        : [],
    ),
    ended: holds.flatMap((h) =>
      !h.created && (h.ended || h.reservationId)
        ? [
            {
              hold_id: h.holdId,
              state: stateOf(h),
              ended_at: h.ended?.at ?? h.confirmedAt ?? null,
              reservation_id: h.reservationId ?? null,
            },
          ]
        : [],
    ),
    reservations: batch.reservations.map((r) => ({
      reservation_id: r.reservationId,
      hold_id: r.holdId,
      shard,
      customer: r.customer,
      seats: r.seats,
      pool_id: r.pool ?? null,
      quantity: r.quantity,
      confirmed_at: r.confirmedAt,
      payload: { type: 'reservation.confirmed', eventId, shard, ...r },
    })),
    idempotency: batch.idempotency.map((i) => ({
      key: i.key,
      shard,
      customer: i.customer,
      fingerprint: i.fingerprint,
      result: i.result,
      at: i.at,
    })),
  };
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
   * Records that the engine is alive until `ttlMs` from now (Postgres's clock), so that the shards
   * it owns count as owned (`inventoryCounts`). Refreshed at every rebalance round.
   */
  async engineSeen(engineId: string, ttlMs: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO engine_heartbeats (engine_id, expires_at) VALUES ($1, now() + make_interval(secs => $2::float8 / 1000))
       ON CONFLICT (engine_id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [engineId, ttlMs],
    );
  }

  /** An engine that stopped: its row goes, and so do those of engines not seen for a day (crashed ones never say so). */
  async engineGone(engineId: string): Promise<void> {
    await this.pool.query(`DELETE FROM engine_heartbeats WHERE engine_id = $1 OR expires_at < now() - interval '1 day'`, [engineId]);
  }

  /**
   * Which of these events' sales are over: closed, archived, past their close, or gone — not
   * merely not open yet (a sale whose opening moved later keeps its holds for when it opens).
   */
  async closedEvents(ids: readonly string[], now: Date): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const { rows } = await this.pool.query<{ id: string }>(
      `SELECT x.id FROM unnest($1::text[]) AS x (id) LEFT JOIN events e ON e.id = x.id
        WHERE e.id IS NULL OR ${saleOver('$2')}`,
      [ids, now],
    );
    return new Set(rows.map((r) => r.id));
  }

  /**
   * Shards that no owner serves and that have live holds to end: of sales that are over (`over`:
   * their owner stopped without ending them — it crashed, was stopped, or its last commit failed),
   * or of sales whose opening moved later while they were on sale, with a hold past its expiry
   * (nobody serves them until they open, and a hold must not outlive its TTL meanwhile). The
   * shards with live holds are found by skipping through the live-holds index — about one probe
   * per shard with live holds, sales on sale included, however many holds and past sales there
   * are — and then kept if their sale is over, or not open yet with a hold due (its earliest
   * expiry: one more probe of the same index, which holds the expiry).
   */
  async shardsToSettle(now: Date): Promise<(ShardRef & { readonly over: boolean })[]> {
    const { rows } = await this.pool.query<{ event_id: string; shard: number; over: boolean }>(
      `WITH RECURSIVE live AS (
         (SELECT event_id, shard FROM holds WHERE state = 'live' ORDER BY event_id, shard LIMIT 1)
         UNION ALL
         SELECT n.event_id, n.shard FROM live l CROSS JOIN LATERAL (
           SELECT event_id, shard FROM holds WHERE state = 'live' AND (event_id, shard) > (l.event_id, l.shard)
            ORDER BY event_id, shard LIMIT 1) n
       )
       SELECT l.event_id, l.shard, ${saleOver('$1')} AS over FROM live l JOIN events e ON e.id = l.event_id
        WHERE ${saleOver('$1')}
           OR (e.sale_opens_at > $1 AND (SELECT min(h.expires_at) FROM holds h
                                          WHERE h.event_id = l.event_id AND h.shard = l.shard AND h.state = 'live') <= $1)
        ORDER BY 1, 2`,
      [now],
    );
    return rows.map((r) => ({ eventId: r.event_id, shard: r.shard, over: r.over }));
  }

  /**
   * Claims a shard: bumps its epoch (the fencing token) and records the owner. From the moment
   * this commits, any commit of a previous owner matches no row and is rejected.
   *
   * With `lease` (the claimer's shard lease), the bump commits only while the lease is held: the
   * statement may take no longer than what is left of it, and the lease is looked at again before
   * the commit. A bump landing after the lease ran out — a wait for a pool connection, a pause —
   * when another engine may have taken the lease and claimed the shard since, would fence that
   * rightful owner.
   */
  async claimShard(eventId: string, shard: number, owner: string, lease?: ClaimLease): Promise<number> {
    // With `idleLimitMs`, the transaction may then sit idle only for what is left of that time since
    // the statement began: set as the bump returns, after any wait for the shard row's lock.
    const bump = async (db: Pick<pg.PoolClient, 'query'>, idleLimitMs?: number) => {
      const { rows } = await db.query<{ epoch: string }>(
        `UPDATE shards SET epoch = epoch + 1, owner = $3, claimed_at = now(), version = version + 1
          WHERE event_id = $1 AND shard = $2
          RETURNING epoch${
            idleLimitMs === undefined
              ? ''
              : `, set_config('idle_in_transaction_session_timeout',
                   greatest(1, ${idleLimitMs} - floor(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000))::text, true)`
          }`,
        [eventId, shard, owner],
      );
      if (!rows[0]) throw new FencedError(`shard ${eventId}/${shard} does not exist`);
      return Number(rows[0].epoch);
    };
    if (lease === undefined) return bump(this.pool);
    const ranOut = () => new FencedError(`shard ${eventId}/${shard}: the lease ran out before the claim could commit`);
    return inTransaction(this.pool, `claim shard ${eventId}/${shard}`, async (client) => {
      const leftMs = Math.floor(lease.expiresAt - Date.now() - CLAIM_MARGIN_MS);
      if (leftMs <= 0 || !lease.holdOrLose()) throw ranOut();
      // Neither the bump nor the transaction outlives the lease: a claimer paused after the bump
      // would otherwise keep the shard row locked — every commit of the shard waiting on it — until
      // its session is ended (IDLE_IN_TRANSACTION_TIMEOUT_MS); the server rolls the bump back instead.
      await client.query(`SET LOCAL statement_timeout = ${leftMs}`);
      // The server's deadline is the one checked below (CLAIM_MARGIN_MS / 2 before the lease's
      // end): a bump that returns in time commits, one that does not is rolled back either way.
      const epoch = await bump(client, leftMs + CLAIM_MARGIN_MS / 2);
      if (lease.expiresAt - Date.now() < CLAIM_MARGIN_MS / 2 || !lease.holdOrLose()) throw ranOut(); // rolled back
      return epoch;
    });
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
      const seats = await client.query<{
        seat_id: string;
        state: SeatState;
        hold_id: string | null;
        version: number;
        buyer: string | null;
      }>(LOAD_SEATS_SQL, [eventId, shard]);
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
      }>(ENDED_HOLDS_QUERY, [eventId, shard, idempotencySince]);
      return {
        endedHolds: ended.rows.map((r) => ({
          holdId: r.hold_id,
          customer: r.customer,
          outcome: r.state,
          ...(r.reservation_id ? { reservationId: r.reservation_id } : {}),
          at: r.ended_at.getTime(),
        })),
        seats: seats.rows.map((r) => ({
          id: r.seat_id,
          state: r.state,
          holdId: r.hold_id,
          version: r.version,
          ...(r.buyer === null ? {} : { buyer: r.buyer }),
        })),
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
   * A shard's group commit: the fencing check, the event-wide per-customer usage, then every row
   * the batch changed (each write versioned), in one statement and so one transaction — all of it
   * or nothing. Throws FencedError if the epoch moved on, and VersionConflictError (a FencedError)
   * if a row is not at the version the shard last saw (someone else wrote it). When the limit
   * refuses some customers' growth, nothing is written and their current usage is returned: the
   * caller takes their new holds out and commits again.
   */
  async commitBatch(eventId: string, shard: number, epoch: number, limit: number, batch: BatchWrite, topic: string): Promise<UsageCheck> {
    try {
      await this.pool.query({
        // Named: parsed once per connection.
        name: 'sentinel-commit-batch',
        text: 'SELECT sentinel_commit_batch($1, $2, $3, $4, $5, $6)',
        values: [eventId, shard, epoch, limit, topic, commitDocument(batch, eventId, shard)],
      });
      return { refused: new Map() };
    } catch (error) {
      const { code, message, detail } = error as { code?: unknown; message?: unknown; detail?: unknown };
      if (code === COMMIT_FENCED) throw new FencedError(String(message));
      if (code === COMMIT_VERSION_CONFLICT) throw new VersionConflictError(String(message));
      if (code === COMMIT_LIMIT_REFUSED) return { refused: new Map(Object.entries(JSON.parse(String(detail)) as Record<string, number>)) };
      throw translatePgError(error, `commit ${eventId}/${shard}`);
    }
  }

  /**
   * The group commits of several shards of one event in one call and one transaction
   * (`sentinel_commit_shards`): all of them or nothing. 'refused' when Postgres answered with an
   * error — a shard fenced, a row changed underneath, the customer limit, a deadlock, a timeout:
   * nothing was written, and `ShardCommits` commits each part on its own to learn which shard it
   * concerns. Throws when no answer came (the connection), or the connection or server was
   * terminated: whether it committed is not known.
   */
  async commitShards(eventId: string, limit: number, parts: readonly ShardCommit[], topic: string): Promise<'committed' | 'refused'> {
    try {
      await this.pool.query({
        name: 'sentinel-commit-shards',
        text: 'SELECT sentinel_commit_shards($1, $2, $3, $4)',
        values: [eventId, limit, topic, shardsDocument(parts, eventId)],
      });
      return 'committed';
    } catch (error) {
      if (STATEMENT_REFUSED.test(String((error as { code?: unknown }).code))) return 'refused';
      throw translatePgError(error, `commit ${eventId}/${parts.map((p) => p.shard).join(',')}`);
    }
  }
}
