/**
 * The persisted form of a shard, and the reference fold of changes into it: what the engine's
 * Postgres commit must do with the `ShardChange`s of a decision, including the versioned writes.
 */
import { SentinelError } from '../errors.js';
import type { CustomerId, HoldView, SeatId, SeatState, ShardChange } from './commands.js';
import { idempotencyScope, type IdempotencyRecord } from './idempotency.js';

/** A seat row. Seats absent from a snapshot are available at version 0 (as provisioned). */
export interface SeatRecord {
  readonly id: SeatId;
  readonly state: SeatState;
  /** The hold that holds it, or that was confirmed into its sale; null when available. */
  readonly holdId: string | null;
  readonly version: number;
  /**
   * Who bought it (the customer of the hold confirmed into its sale), for a sold seat; absent or
   * null for other seats, and for a sold seat whose buyer is not known — the shard then never
   * names that seat sold in a refusal (callers ask it instead of guessing; see `soldTo`).
   */
  readonly buyer?: CustomerId | null;
}

/** A pool's counters. Pools absent from a snapshot have nothing held or sold, at version 0. */
export interface PoolRecord {
  readonly id: string;
  readonly capacity: number;
  readonly held: number;
  readonly sold: number;
  readonly version: number;
}

/** How a hold ended, remembered to answer `hold-expired` / `hold-confirmed` instead of `hold-not-found`. */
export interface EndedHoldRecord {
  readonly holdId: string;
  readonly customer: CustomerId;
  readonly outcome: 'released' | 'expired' | 'confirmed';
  readonly reservationId?: string;
  /** When it ended (epoch ms, the commit's decision time). */
  readonly at: number;
}

/** Seats + places a customer has reserved in this shard. */
export interface CustomerReservations {
  readonly customer: CustomerId;
  readonly quantity: number;
}

/** Everything a shard needs to rebuild itself: the durable rows of its seats, pools, holds and keys. */
export interface ShardSnapshot {
  readonly seats: readonly SeatRecord[];
  readonly pools: readonly PoolRecord[];
  /** Live holds: created, neither released, expired (as persisted) nor confirmed. Expired ones included; the shard expires them after restore. */
  readonly liveHolds: readonly HoldView[];
  readonly reservedByCustomer: readonly CustomerReservations[];
  /** Remembered successful results (failures are never persisted). */
  readonly idempotency: readonly IdempotencyRecord[];
  /** Recently ended holds (optional: without them, late confirms of ended holds answer `hold-not-found`). */
  readonly endedHolds?: readonly EndedHoldRecord[];
}

/** A snapshot that contradicts itself or the layout (it never should: it comes from versioned, transactional writes). */
export class SnapshotError extends SentinelError {
  constructor(message: string) {
    super('snapshot_inconsistent', message);
  }
}

/**
 * A versioned write to the in-memory model of the shard's rows (PersistedShard) found a different
 * version: what Postgres reports as "0 rows updated" (there, a VersionConflictError of src/errors.ts).
 */
export class StaleWriteError extends SentinelError {
  constructor(message: string) {
    super('stale_write', message);
  }
}

/**
 * A shard's durable state, kept in memory, folded from changes exactly as the engine's commit
 * applies them to Postgres: versioned writes (a stale `fromVersion` is a conflict), holds created
 * and ended, reservations, idempotency records. Tests use it to prove the changes are complete:
 * restoring from `snapshot()` must give back the shard that emitted them.
 */
export class PersistedShard {
  private readonly seats = new Map<SeatId, SeatRecord>();
  private readonly pools = new Map<string, PoolRecord>();
  private readonly holds = new Map<string, HoldView>();
  private readonly reservations = new Map<CustomerId, number>();
  private readonly idempotency = new Map<string, IdempotencyRecord>();
  private readonly ended = new Map<string, EndedHoldRecord>();

  constructor(pools: readonly { readonly id: string; readonly capacity: number }[] = [], from?: ShardSnapshot) {
    for (const pool of pools) this.pools.set(pool.id, { id: pool.id, capacity: pool.capacity, held: 0, sold: 0, version: 0 });
    if (from === undefined) return;
    for (const seat of from.seats) this.seats.set(seat.id, seat);
    for (const pool of from.pools) this.pools.set(pool.id, pool);
    for (const hold of from.liveHolds) this.holds.set(hold.holdId, hold);
    for (const { customer, quantity } of from.reservedByCustomer) this.reservations.set(customer, quantity);
    for (const record of from.idempotency) this.idempotency.set(idempotencyScope(record.customer, record.key), record);
    for (const record of from.endedHolds ?? []) this.ended.set(record.holdId, record);
  }

  /** Applies one decision's (or one batch's) changes as one transaction, all or nothing, committed at `at`. */
  apply(changes: readonly ShardChange[], at: number): void {
    const undo: (() => void)[] = [];
    const put = <K, V>(map: Map<K, V>, key: K, value: V | undefined): void => {
      const previous = map.get(key);
      undo.push(() => (previous === undefined ? map.delete(key) : map.set(key, previous)));
      if (value === undefined) map.delete(key);
      else map.set(key, value);
    };
    try {
      for (const change of changes) this.applyOne(change, at, put);
    } catch (error) {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
      throw error;
    }
  }

  private applyOne(change: ShardChange, at: number, put: <K, V>(map: Map<K, V>, key: K, value: V | undefined) => void): void {
    switch (change.type) {
      case 'seat': {
        const version = this.seats.get(change.seat)?.version ?? 0;
        if (version !== change.fromVersion) {
          throw new StaleWriteError(`seat ${change.seat} is at version ${version}, the write expected ${change.fromVersion}`);
        }
        const buyer = change.state === 'sold' && change.holdId !== null ? this.customerOfHold(change.holdId) : undefined;
        put(this.seats, change.seat, {
          id: change.seat,
          state: change.state,
          holdId: change.holdId,
          version: change.toVersion,
          ...(buyer === undefined ? {} : { buyer }),
        });
        return;
      }
      case 'pool': {
        const pool = this.pools.get(change.pool);
        const version = pool?.version ?? 0;
        if (pool === undefined || version !== change.fromVersion) {
          throw new StaleWriteError(`pool ${change.pool} is at version ${version}, the write expected ${change.fromVersion}`);
        }
        put(this.pools, change.pool, { ...pool, held: change.held, sold: change.sold, version: change.toVersion });
        return;
      }
      case 'hold-created':
        if (this.holds.has(change.hold.holdId)) throw new StaleWriteError(`hold ${change.hold.holdId} already exists`);
        put(this.holds, change.hold.holdId, change.hold);
        return;
      case 'hold-ended': {
        const hold = this.holds.get(change.holdId);
        if (hold === undefined) throw new StaleWriteError(`hold ${change.holdId} is not live`);
        put(this.holds, change.holdId, undefined);
        put(this.ended, change.holdId, { holdId: change.holdId, customer: hold.customer, outcome: change.reason, at });
        return;
      }
      case 'reservation-created': {
        const { reservation } = change;
        if (!this.holds.has(reservation.holdId)) throw new StaleWriteError(`hold ${reservation.holdId} is not live`);
        put(this.holds, reservation.holdId, undefined);
        put(this.reservations, reservation.customer, (this.reservations.get(reservation.customer) ?? 0) + reservation.quantity);
        put(this.ended, reservation.holdId, {
          holdId: reservation.holdId,
          customer: reservation.customer,
          outcome: 'confirmed',
          reservationId: reservation.reservationId,
          at,
        });
        return;
      }
      case 'idempotency': {
        const { key, customer, fingerprint, result } = change;
        put(this.idempotency, idempotencyScope(customer, key), { key, customer, fingerprint, result, at: change.at });
        return;
      }
    }
  }

  /** The customer of a hold, live or ended (a sold seat's change comes before its hold's end). */
  private customerOfHold(holdId: string): CustomerId | undefined {
    return this.holds.get(holdId)?.customer ?? this.ended.get(holdId)?.customer;
  }

  snapshot(): ShardSnapshot {
    return {
      seats: [...this.seats.values()],
      pools: [...this.pools.values()],
      liveHolds: [...this.holds.values()],
      reservedByCustomer: [...this.reservations].map(([customer, quantity]) => ({ customer, quantity })),
      idempotency: [...this.idempotency.values()],
      endedHolds: [...this.ended.values()],
    };
  }
}
