import { createHash } from 'node:crypto';
import type pg from 'pg';
import { validateLayout, type Layout } from '../domain/layout.js';
import { checkShardCount, shardMap } from '../domain/shard-map.js';
import { resolveShardSettings, ShardSettingsError } from '../domain/shard-settings.js';
import { inTransaction } from '../adapters/postgres/pool.js';

/** What an event is, as the operator's TicketEvent spec describes it. */
export interface EventSpec {
  readonly eventId: string;
  readonly displayName: string;
  /** An EventLayout (see src/domain/layout.ts); validated here. */
  readonly layout: unknown;
  readonly shardCount: number;
  readonly holdTtlMs: number;
  readonly customerLimit: number;
  /** Admitted requests per second for the whole event, across all ingress replicas. */
  readonly admissionRate: number;
  readonly saleOpensAt: Date;
  readonly saleClosesAt: Date;
}

/** The result of provisioning: what was done, or why nothing was. */
export type ProvisionOutcome =
  | { readonly status: 'created'; readonly seats: number; readonly pools: number; readonly shards: number }
  | { readonly status: 'unchanged' }
  /** Settings changed (display name, sale window, limit, rate, hold TTL) and were applied. */
  | { readonly status: 'updated'; readonly changed: readonly string[] }
  /**
   * Nothing was applied: an invalid spec, an unsafe change (layout or shard count), or an event
   * that is over (archived, or closed: never sold again).
   */
  | {
      readonly status: 'refused';
      readonly reason: 'invalid' | 'layout-changed' | 'shard-count-changed' | 'archived' | 'closed';
      readonly message: string;
    };

/** A sale window, as the inventory holds it. */
export interface SaleWindow {
  readonly opensAt: Date;
  readonly closesAt: Date;
}

/** Seat counts of an event, from the committed inventory. */
export interface InventoryCounts {
  readonly total: number;
  readonly available: number;
  readonly held: number;
  readonly sold: number;
  /**
   * `owned`: shards whose owner is alive (its heartbeat has not run out); `named`: shards that name
   * an owner at all — one that crashed, or is paused, too (it has not let them go).
   */
  readonly shards: { readonly desired: number; readonly owned: number; readonly named: number };
  /**
   * The sale window in force: the events row's — the one engines claim shards by and the ingress
   * sells by — so the last *accepted* one (an edit the inventory refuses leaves it as it was).
   */
  readonly sale: SaleWindow;
}

const EVENT_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A stable fingerprint of a validated layout: provisioning compares it to detect layout changes. */
export function layoutHash(layout: Layout): string {
  return createHash('sha256').update(JSON.stringify(layout)).digest('hex').slice(0, 32);
}

function invalid(message: string): ProvisionOutcome {
  return { status: 'refused', reason: 'invalid', message };
}

/** Checks a spec without touching the database; returns the validated layout or a refusal. */
export function checkSpec(spec: EventSpec): { ok: true; layout: Layout } | { ok: false; outcome: ProvisionOutcome } {
  if (!EVENT_ID.test(spec.eventId))
    return { ok: false, outcome: invalid(`event id ${JSON.stringify(spec.eventId)} must be a DNS label (a-z, 0-9, -)`) };
  const validation = validateLayout(spec.layout);
  if (!validation.ok) return { ok: false, outcome: invalid(validation.errors.map((e) => `${e.path}: ${e.message}`).join('; ')) };
  const shardProblem = checkShardCount(validation.layout, spec.shardCount);
  if (shardProblem) return { ok: false, outcome: invalid(shardProblem) };
  if (!Number.isInteger(spec.holdTtlMs) || spec.holdTtlMs < 1000)
    return { ok: false, outcome: invalid('hold TTL must be at least 1000 ms') };
  if (!Number.isInteger(spec.customerLimit) || spec.customerLimit < 1)
    return { ok: false, outcome: invalid('customer limit must be an integer ≥ 1') };
  // The bounds an engine enforces when it builds a shard: a spec beyond them would be stored and
  // then refused by every claim, and the shards never served.
  try {
    resolveShardSettings({ holdTtlMs: spec.holdTtlMs, customerLimit: spec.customerLimit });
  } catch (error) {
    if (error instanceof ShardSettingsError) return { ok: false, outcome: invalid(error.message) };
    throw error;
  }
  if (!Number.isInteger(spec.admissionRate) || spec.admissionRate < 1)
    return { ok: false, outcome: invalid('admission rate must be an integer ≥ 1') };
  if (!(spec.saleClosesAt.getTime() > spec.saleOpensAt.getTime()))
    return { ok: false, outcome: invalid('the sale must close after it opens') };
  return { ok: true, layout: validation.layout };
}

const SEAT_CHUNK = 20_000;

/**
 * Creates an event's inventory (event row, shards, seats, pools) from its spec, idempotently:
 * a second call with the same spec changes nothing; changed settings are applied; a changed
 * layout or shard count is refused and reported, never applied. Concurrent calls for one event
 * are serialised by an advisory lock.
 */
export async function provisionEvent(pool: pg.Pool, spec: EventSpec): Promise<ProvisionOutcome> {
  const checked = checkSpec(spec);
  if (!checked.ok) return checked.outcome;
  const layout = checked.layout;
  const hash = layoutHash(layout);
  const outcome = await inTransaction(pool, `provision ${spec.eventId}`, async (client): Promise<ProvisionOutcome> => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`provision:${spec.eventId}`]);
    const { rows } = await client.query<{
      layout_hash: string;
      shard_count: number;
      status: string;
      display_name: string;
      hold_ttl_ms: number;
      customer_limit: number;
      admission_rate: number;
      sale_opens_at: Date;
      sale_closes_at: Date;
    }>(
      // FOR NO KEY UPDATE, not FOR UPDATE: every commit of a sale that inserts a row referencing the
      // event (a hold, a reservation, a key) takes FOR KEY SHARE on it for the foreign key, which
      // FOR UPDATE would conflict with — a reconcile during a sale would stall every shard's commits
      // for as long as its transaction lasts. Provisions are serialised by the advisory lock above.
      'SELECT * FROM events WHERE id = $1 FOR NO KEY UPDATE',
      [spec.eventId],
    );
    const existing = rows[0];
    if (existing) {
      if (existing.status === 'archived') return { status: 'refused', reason: 'archived', message: `event ${spec.eventId} is archived` };
      // Closed for good (the close of a deletion whose finalizer was then removed by hand, or a
      // job's retired event): no engine serves a closed event, so provisioning it again would
      // report a sale that nothing sells. Like an archived one, it is never reopened.
      if (existing.status === 'closed')
        return {
          status: 'refused',
          reason: 'closed',
          message: `event ${spec.eventId} is closed (its sale was stopped for good, as when its TicketEvent was deleted) and is never reopened`,
        };
      if (existing.layout_hash !== hash) {
        return {
          status: 'refused',
          reason: 'layout-changed',
          message: `the layout of ${spec.eventId} differs from the provisioned one; layouts cannot change once provisioned`,
        };
      }
      if (existing.shard_count !== spec.shardCount) {
        return {
          status: 'refused',
          reason: 'shard-count-changed',
          message: `shard count ${spec.shardCount} differs from the provisioned ${existing.shard_count}; it cannot change once provisioned`,
        };
      }
      const changed: string[] = [];
      if (existing.display_name !== spec.displayName) changed.push('displayName');
      if (existing.hold_ttl_ms !== spec.holdTtlMs) changed.push('holdTtlMs');
      if (existing.customer_limit !== spec.customerLimit) changed.push('customerLimit');
      if (existing.admission_rate !== spec.admissionRate) changed.push('admissionRate');
      if (existing.sale_opens_at.getTime() !== spec.saleOpensAt.getTime()) changed.push('saleOpensAt');
      if (existing.sale_closes_at.getTime() !== spec.saleClosesAt.getTime()) changed.push('saleClosesAt');
      if (changed.length === 0) return { status: 'unchanged' };
      await client.query(
        `UPDATE events SET display_name = $2, hold_ttl_ms = $3, customer_limit = $4, admission_rate = $5, sale_opens_at = $6,
                sale_closes_at = $7, version = version + 1, updated_at = now() WHERE id = $1`,
        [spec.eventId, spec.displayName, spec.holdTtlMs, spec.customerLimit, spec.admissionRate, spec.saleOpensAt, spec.saleClosesAt],
      );
      return { status: 'updated', changed };
    }

    await client.query(
      `INSERT INTO events (id, display_name, layout, layout_hash, shard_count, hold_ttl_ms, customer_limit, admission_rate, sale_opens_at, sale_closes_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        spec.eventId,
        spec.displayName,
        JSON.stringify(layout),
        hash,
        spec.shardCount,
        spec.holdTtlMs,
        spec.customerLimit,
        spec.admissionRate,
        spec.saleOpensAt,
        spec.saleClosesAt,
      ],
    );
    await client.query('INSERT INTO shards (event_id, shard) SELECT $1, s FROM generate_series(0, $2 - 1) AS s', [
      spec.eventId,
      spec.shardCount,
    ]);
    const map = shardMap(layout, spec.shardCount);
    let seats = 0;
    const batch: { id: string; shard: number; section: string; row: string; number: number }[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await client.query(
        `INSERT INTO seats (event_id, seat_id, shard, section, row_id, number)
         SELECT $1, * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::int[])`,
        [
          spec.eventId,
          batch.map((s) => s.id),
          batch.map((s) => s.shard),
          batch.map((s) => s.section),
          batch.map((s) => s.row),
          batch.map((s) => s.number),
        ],
      );
      seats += batch.length;
      batch.length = 0;
    };
    for (const section of layout.sections) {
      for (const row of section.rows) {
        const shard = map.shardOfSeat(`${section.id}-${row.id}-1`) ?? 0;
        for (let n = 1; n <= row.seats; n++) {
          batch.push({ id: `${section.id}-${row.id}-${n}`, shard, section: section.id, row: row.id, number: n });
          if (batch.length >= SEAT_CHUNK) await flush();
        }
      }
    }
    await flush();
    for (const p of layout.pools) {
      await client.query('INSERT INTO pools (event_id, pool_id, shard, capacity) VALUES ($1, $2, $3, $4)', [
        spec.eventId,
        p.id,
        map.shardOfPool(p.id) ?? 0,
        p.capacity,
      ]);
    }
    return { status: 'created', seats, pools: layout.pools.length, shards: spec.shardCount };
  });
  // Fresh statistics before the sale: planned with statistics from before this event existed, the
  // engine's batched seat writes (a join of the batch with the event's seats) may hash every seat
  // of the event on every commit — with a few events in the database, a 30-fold cost (ADR 0008).
  // Best effort: the event is provisioned already, and a statement timeout here (a large table on
  // a busy database; CI saw one) must not report it failed — autovacuum analyzes it soon anyway.
  if (outcome.status === 'created') await pool.query('ANALYZE seats, pools').catch(() => undefined);
  return outcome;
}

/**
 * Seat and place counts of an event from committed rows, plus shards desired/owned — owned by an
 * engine that is alive: `shards.owner` outlives an engine that crashed, its heartbeat does not.
 */
export async function inventoryCounts(pool: pg.Pool, eventId: string): Promise<InventoryCounts | undefined> {
  const { rows } = await pool.query<{
    shard_count: number;
    total: string;
    available: string;
    held: string;
    sold: string;
    owned: string;
    named: string;
    sale_opens_at: Date;
    sale_closes_at: Date;
  }>(
    `SELECT e.shard_count, e.sale_opens_at, e.sale_closes_at,
            s.total + p.capacity AS total, s.available + (p.capacity - p.held - p.sold) AS available,
            s.held + p.held AS held, s.sold + p.sold AS sold,
            (SELECT count(*) FROM shards s JOIN engine_heartbeats h ON h.engine_id = s.owner
              WHERE s.event_id = e.id AND h.expires_at > now()) AS owned,
            (SELECT count(*) FROM shards WHERE event_id = e.id AND owner IS NOT NULL) AS named
       FROM events e,
            LATERAL (SELECT count(*) AS total, count(*) FILTER (WHERE state = 'available') AS available,
                            count(*) FILTER (WHERE state = 'held') AS held, count(*) FILTER (WHERE state = 'sold') AS sold
                       FROM seats WHERE event_id = e.id) s,
            LATERAL (SELECT coalesce(sum(capacity), 0) AS capacity, coalesce(sum(held), 0) AS held, coalesce(sum(sold), 0) AS sold
                       FROM pools WHERE event_id = e.id) p
      WHERE e.id = $1`,
    [eventId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    total: Number(row.total),
    available: Number(row.available),
    held: Number(row.held),
    sold: Number(row.sold),
    shards: { desired: row.shard_count, owned: Number(row.owned), named: Number(row.named) },
    sale: { opensAt: row.sale_opens_at, closesAt: row.sale_closes_at },
  };
}

/**
 * Outbox rows of an event not yet published to Kafka (any topic). Only engines relay the outbox, so
 * deletion waits for this to reach 0 before it lets the engines go.
 */
export async function unpublishedOutboxRows(pool: pg.Pool, eventId: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE event_id = $1 AND published_at IS NULL', [
    eventId,
  ]);
  return rows[0]?.n ?? 0;
}

/** Stops the sale: engines end its live holds and drop its shards (ADR 0006, item 10); reservations stay. Idempotent. */
export async function closeEvent(pool: pg.Pool, eventId: string): Promise<void> {
  await pool.query(`UPDATE events SET status = 'closed', version = version + 1, updated_at = now() WHERE id = $1 AND status = 'open'`, [
    eventId,
  ]);
}

/** Archives an event after its engines drained: reservations are marked archived, never deleted. Idempotent. */
export async function archiveEvent(pool: pg.Pool, eventId: string): Promise<{ archivedReservations: number }> {
  return inTransaction(pool, `archive ${eventId}`, async (client) => {
    const archived = await client.query('UPDATE reservations SET archived_at = now() WHERE event_id = $1 AND archived_at IS NULL', [
      eventId,
    ]);
    await client.query(
      `UPDATE events SET status = 'archived', version = version + 1, updated_at = now() WHERE id = $1 AND status <> 'archived'`,
      [eventId],
    );
    return { archivedReservations: archived.rowCount ?? 0 };
  });
}
