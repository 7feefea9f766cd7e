/**
 * What the ingress reads from Postgres: committed state only (availability, seat maps,
 * reservations, which shard a hold lives in, and — after a sale closed — what a shard committed
 * under a request's key). The shards are never asked to answer reads — they are busy deciding the
 * sale.
 */
import { evictOldest } from '../evict.js';
import { MAX_CACHED_EVENTS } from './event-catalog.js';
import type pg from 'pg';
import { translatePgError } from '../adapters/postgres/errors.js';
import { withDeadline } from '../deadline.js';
import { DependencyError } from '../errors.js';
import type { SeatState, ShardCommand, ShardResult } from '../domain/commands.js';
import { fingerprintOf } from '../domain/idempotency.js';
import type { SectionLayout } from '../domain/layout.js';
import type { ShardMap } from '../domain/shard-map.js';
import type { ReservationRow } from '../adapters/postgres/inventory-store.js';

/** Counts of one section or pool. */
export interface Counts {
  readonly total: number;
  readonly available: number;
  readonly held: number;
  readonly sold: number;
}

export interface Availability {
  readonly eventId: string;
  readonly asOf: string;
  readonly sections: (Counts & { readonly section: string })[];
  readonly pools: (Counts & { readonly pool: string })[];
}

export interface SeatMapView {
  readonly eventId: string;
  readonly section: string;
  readonly asOf: string;
  readonly rows: {
    readonly row: string;
    readonly seats: { readonly seat: string; readonly number: number; readonly state: SeatState }[];
  }[];
}

/** A reservation as stored, with its owner (never sent to clients). */
export interface StoredReservation {
  readonly reservationId: string;
  readonly eventId: string;
  readonly holdId: string;
  readonly customer: string;
  readonly seats: readonly string[];
  readonly pool: string | null;
  readonly quantity: number;
  readonly confirmedAt: Date;
}

/** A hold as committed, with its owner (never sent to clients). */
export interface StoredHold {
  readonly holdId: string;
  readonly eventId: string;
  readonly customer: string;
  readonly seats: readonly string[];
  readonly pool: string | null;
  readonly quantity: number;
  readonly state: 'live' | 'confirmed' | 'released' | 'expired';
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly reservationId: string | null;
}

/** Where a hold lives and whose it is. */
export interface HoldLocation {
  readonly shard: number;
  readonly customer: string;
}

/** How long a request waits for a read before answering 503 (ms; as for events and Redis commands, ADR 0004). */
export const READ_WAIT_MS = 2000;

/** How long an availability or seat-map answer is reused, so a stampede of readers costs one query (ms). */
export const READ_CACHE_MS = 500;

/**
 * Seat maps cached at most (sections of any events; each up to a few hundred kB). Entries are kept
 * in reading order, so those evicted first are the oldest reads: past READ_CACHE_MS already unless
 * more sections than this are read within it (then each costs a query again, as uncached).
 */
const MAX_CACHED_SEAT_MAPS = 64;

/** A section's seats and their states: read through the index of seats by section (migration 0014), not the event's every seat. */
export const SEAT_MAP_SQL = 'SELECT seat_id, state FROM seats WHERE event_id = $1 AND section = $2';

/**
 * Answers reused for a short while: readers who ask within `ttlMs` of a read — while it runs, or
 * after — share it. A failed read is not kept (unless a newer one has taken its place since).
 */
class BriefCache<V> {
  private readonly entries = new Map<string, { at: number; value: Promise<V> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly capacity: number,
  ) {}

  get(key: string, now: number, read: () => Promise<V>): Promise<V> {
    const cached = this.entries.get(key);
    if (cached !== undefined && now - cached.at < this.ttlMs) return cached.value;
    const entry = { at: now, value: read() };
    this.entries.delete(key); // set again: the map stays in reading order
    this.entries.set(key, entry);
    evictOldest(this.entries, this.capacity);
    entry.value.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return entry.value;
  }
}

export class InventoryReads {
  private readonly availabilityCache = new BriefCache<Availability>(READ_CACHE_MS, MAX_CACHED_EVENTS);
  private readonly seatMapCache = new BriefCache<SeatMapView>(READ_CACHE_MS, MAX_CACHED_SEAT_MAPS);

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number = Date.now,
    private readonly readWaitMs = READ_WAIT_MS,
  ) {}

  /**
   * A read, waited for at most `readWaitMs`: a Postgres that stops answering (paused, or behind a
   * link that drops packets) is a 503 within seconds, not a request held for the pool's query
   * timeout. The query goes on; its late answer is dropped.
   */
  private async query<R extends pg.QueryResultRow>(what: string, sql: string, params: unknown[]): Promise<R[]> {
    try {
      const late = () => new DependencyError('postgres', `${what}: no answer within ${this.readWaitMs} ms`);
      return (await withDeadline(this.pool.query<R>(sql, params), this.readWaitMs, late)).rows;
    } catch (error) {
      throw translatePgError(error, what);
    }
  }

  /** Counts per section (layout order) and pool, from committed state; cached briefly. */
  availability(eventId: string, map: ShardMap): Promise<Availability> {
    const now = this.now();
    return this.availabilityCache.get(eventId, now, () => this.readAvailability(eventId, map, now));
  }

  private async readAvailability(eventId: string, map: ShardMap, now: number): Promise<Availability> {
    const [sections, pools] = await Promise.all([
      this.query<{ section: string; total: number; available: number; held: number; sold: number }>(
        'availability',
        `SELECT section, count(*)::int AS total,
                count(*) FILTER (WHERE state = 'available')::int AS available,
                count(*) FILTER (WHERE state = 'held')::int AS held,
                count(*) FILTER (WHERE state = 'sold')::int AS sold
           FROM seats WHERE event_id = $1 GROUP BY section`,
        [eventId],
      ),
      this.query<{ pool_id: string; capacity: number; held: number; sold: number }>(
        'availability',
        'SELECT pool_id, capacity, held, sold FROM pools WHERE event_id = $1',
        [eventId],
      ),
    ]);
    const bySection = new Map(sections.map((s) => [s.section, s]));
    const byPool = new Map(pools.map((p) => [p.pool_id, p]));
    return {
      eventId,
      asOf: new Date(now).toISOString(),
      sections: map.layout.sections.map((s) => {
        const row = bySection.get(s.id);
        return { section: s.id, total: row?.total ?? 0, available: row?.available ?? 0, held: row?.held ?? 0, sold: row?.sold ?? 0 };
      }),
      pools: map.layout.pools.map((p) => {
        const row = byPool.get(p.id);
        const held = row?.held ?? 0;
        const sold = row?.sold ?? 0;
        const total = row?.capacity ?? p.capacity;
        return { pool: p.id, total, available: row === undefined ? 0 : total - held - sold, held, sold };
      }),
    };
  }

  /** The seat map of a section (rows best first), from committed state; cached briefly. Undefined for a section the layout lacks. */
  async seatMap(eventId: string, map: ShardMap, sectionId: string): Promise<SeatMapView | undefined> {
    // Looked up first: sections made up by a client must not push real seat maps out of the cache.
    const section = map.layout.sections.find((s) => s.id === sectionId);
    if (section === undefined) return undefined;
    const now = this.now();
    return this.seatMapCache.get(`${eventId}\u0000${sectionId}`, now, () => this.readSeatMap(eventId, section, now));
  }

  private async readSeatMap(eventId: string, section: SectionLayout, now: number): Promise<SeatMapView> {
    const sectionId = section.id;
    const rows = await this.query<{ seat_id: string; state: SeatState }>('seat map', SEAT_MAP_SQL, [eventId, sectionId]);
    const states = new Map(rows.map((r) => [r.seat_id, r.state]));
    return {
      eventId,
      section: sectionId,
      asOf: new Date(now).toISOString(),
      rows: section.rows.map((row) => {
        const seats = [];
        for (let n = 1; n <= row.seats; n++) {
          const seat = `${section.id}-${row.id}-${n}`;
          // Seat rows are provisioned with the event; a missing one is shown as not for sale.
          seats.push({ seat, number: n, state: states.get(seat) ?? 'sold' });
        }
        return { row: row.id, seats };
      }),
    };
  }

  async reservation(reservationId: string): Promise<StoredReservation | undefined> {
    const rows = await this.query<ReservationRow>(
      'read reservation',
      'SELECT reservation_id, event_id, hold_id, customer, seats, pool_id, quantity, confirmed_at FROM reservations WHERE reservation_id = $1',
      [reservationId],
    );
    const r = rows[0];
    if (r === undefined) return undefined;
    return {
      reservationId: r.reservation_id,
      eventId: r.event_id,
      holdId: r.hold_id,
      customer: r.customer,
      seats: r.seats,
      pool: r.pool_id,
      quantity: r.quantity,
      confirmedAt: r.confirmed_at,
    };
  }

  /** A hold of an event as last committed (every group commit writes the holds it changed). */
  async hold(eventId: string, holdId: string): Promise<StoredHold | undefined> {
    const rows = await this.query<{
      customer: string;
      seats: string[];
      pool_id: string | null;
      quantity: number;
      state: StoredHold['state'];
      created_at: Date;
      expires_at: Date;
      reservation_id: string | null;
    }>(
      'read hold',
      `SELECT customer, seats, pool_id, quantity, state, created_at, expires_at, reservation_id
         FROM holds WHERE event_id = $1 AND hold_id = $2`,
      [eventId, holdId],
    );
    const h = rows[0];
    if (h === undefined) return undefined;
    return {
      holdId,
      eventId,
      customer: h.customer,
      seats: h.seats,
      pool: h.pool_id,
      quantity: h.quantity,
      state: h.state,
      createdAt: h.created_at,
      expiresAt: h.expires_at,
      reservationId: h.reservation_id,
    };
  }

  /**
   * The success a shard committed for the customer of `commands` under one of them (each with its
   * shard, tried in order) since `since`, as that shard would replay it: its idempotency record of
   * the same key, customer and fingerprint, still inside the idempotency window (ADR 0006,
   * decision 9).
   */
  async committedResult(
    eventId: string,
    commands: readonly { readonly shard: number; readonly command: ShardCommand }[],
    since: Date,
  ): Promise<{ shard: number; result: ShardResult } | undefined> {
    const customer = commands[0]?.command.customer;
    if (customer === undefined) return undefined;
    const rows = await this.query<{ shard: number; key: string; fingerprint: string; result: ShardResult }>(
      'look up a committed result',
      `SELECT shard, key, fingerprint, result FROM idempotency_keys
        WHERE event_id = $1 AND customer = $2 AND shard = ANY($3) AND key = ANY($4) AND created_at >= $5`,
      [eventId, customer, [...new Set(commands.map((c) => c.shard))], [...new Set(commands.map((c) => c.command.key))], since],
    );
    for (const { shard, command } of commands) {
      const row = rows.find((r) => r.shard === shard && r.key === command.key && r.fingerprint === fingerprintOf(command));
      if (row?.result.ok === true) return { shard, result: row.result };
    }
    return undefined;
  }

  /** The shard and owner of a hold (the engine persists a hold before it answers its 201). */
  async holdLocation(eventId: string, holdId: string): Promise<HoldLocation | undefined> {
    const rows = await this.query<{ shard: number; customer: string }>(
      'locate hold',
      'SELECT shard, customer FROM holds WHERE event_id = $1 AND hold_id = $2',
      [eventId, holdId],
    );
    return rows[0];
  }
}
