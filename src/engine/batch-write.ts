import type { HoldView, ReservationView, SeatState, ShardChange, ShardResult } from '../domain/commands.js';

/** A seat's net change over one batch: the version it had before the batch and after it. */
export interface SeatWrite {
  readonly seat: string;
  state: SeatState;
  holdId: string | null;
  readonly fromVersion: number;
  toVersion: number;
}

/** A pool's net change over one batch. */
export interface PoolWrite {
  readonly pool: string;
  held: number;
  sold: number;
  readonly fromVersion: number;
  toVersion: number;
}

/** A hold's net change over one batch: created in it, ended in it, confirmed in it — or several. */
export interface HoldWrite {
  readonly holdId: string;
  created: HoldView | undefined;
  ended: { reason: 'released' | 'expired'; at: number } | undefined;
  reservationId: string | undefined;
  /** When it was confirmed, if it was (epoch ms). */
  confirmedAt: number | undefined;
}

/** Everything one group commit writes, with repeated changes to one row folded into one write. */
export interface BatchWrite {
  readonly seats: Map<string, SeatWrite>;
  readonly pools: Map<string, PoolWrite>;
  readonly holds: Map<string, HoldWrite>;
  readonly reservations: ReservationView[];
  readonly idempotency: { key: string; customer: string; fingerprint: string; result: ShardResult; at: number }[];
  /** Net change of seats/places held or sold per customer (for the event-wide limit). */
  readonly usage: Map<string, number>;
}

export function emptyBatchWrite(): BatchWrite {
  return { seats: new Map(), pools: new Map(), holds: new Map(), reservations: [], idempotency: [], usage: new Map() };
}

function holdWrite(batch: BatchWrite, holdId: string): HoldWrite {
  let write = batch.holds.get(holdId);
  if (!write) {
    write = { holdId, created: undefined, ended: undefined, reservationId: undefined, confirmedAt: undefined };
    batch.holds.set(holdId, write);
  }
  return write;
}

function addUsage(batch: BatchWrite, customer: string, delta: number): void {
  batch.usage.set(customer, (batch.usage.get(customer) ?? 0) + delta);
}

/**
 * Folds decisions' changes, in decision order, into the rows one transaction writes. A seat
 * changed twice keeps its first `fromVersion` (what the database holds) and its last state and
 * `toVersion`, so a versioned write of the net change is exact.
 */
export function foldChanges(batch: BatchWrite, changes: readonly ShardChange[], now: number): void {
  for (const change of changes) {
    switch (change.type) {
      case 'seat': {
        const existing = batch.seats.get(change.seat);
        if (existing) {
          existing.state = change.state;
          existing.holdId = change.holdId;
          existing.toVersion = change.toVersion;
        } else {
          batch.seats.set(change.seat, {
            seat: change.seat,
            state: change.state,
            holdId: change.holdId,
            fromVersion: change.fromVersion,
            toVersion: change.toVersion,
          });
        }
        break;
      }
      case 'pool': {
        const existing = batch.pools.get(change.pool);
        if (existing) {
          existing.held = change.held;
          existing.sold = change.sold;
          existing.toVersion = change.toVersion;
        } else {
          batch.pools.set(change.pool, {
            pool: change.pool,
            held: change.held,
            sold: change.sold,
            fromVersion: change.fromVersion,
            toVersion: change.toVersion,
          });
        }
        break;
      }
      case 'hold-created':
        holdWrite(batch, change.hold.holdId).created = change.hold;
        addUsage(batch, change.hold.customer, change.hold.quantity);
        break;
      case 'hold-ended': {
        holdWrite(batch, change.holdId).ended = { reason: change.reason, at: now };
        addUsage(batch, change.customer, -change.quantity);
        break;
      }
      case 'reservation-created':
        holdWrite(batch, change.reservation.holdId).reservationId = change.reservation.reservationId;
        holdWrite(batch, change.reservation.holdId).confirmedAt = change.reservation.confirmedAt;
        batch.reservations.push(change.reservation);
        break;
      case 'idempotency':
        batch.idempotency.push({
          key: change.key,
          customer: change.customer,
          fingerprint: change.fingerprint,
          result: change.result,
          at: change.at,
        });
        break;
    }
  }
}

/**
 * `changes` with `places` fewer held in the counters they record for `pool`: they were decided
 * after a hold of that pool which its commit refused and which was undone in memory, so they still
 * counted its places. Counters are absolute (what the row is set to), so each of them is off by
 * exactly those places; versions are not, and stay.
 */
export function withoutHeldPlaces(changes: readonly ShardChange[], pool: string, places: number): readonly ShardChange[] {
  if (!changes.some((change) => change.type === 'pool' && change.pool === pool)) return changes;
  return changes.map((change) => (change.type === 'pool' && change.pool === pool ? { ...change, held: change.held - places } : change));
}

/** The hold a decision created, if any (a command creates at most one). */
export function createdHold(changes: readonly ShardChange[]): HoldView | undefined {
  for (const change of changes) if (change.type === 'hold-created') return change.hold;
  return undefined;
}

/**
 * Which of a batch's new holds the event-wide limit refuses. `refused` names the customers whose
 * growth the commit refused, with their usage then (every shard's holds). A customer's holds are
 * kept in decision order while that usage, less what the batch ends for them, plus the holds kept
 * so far stays within the limit; the rest are refused — only those: until 2026-12-03 all of the
 * customer's new holds in the batch were, so one of two concurrent holds that fitted was refused
 * with the other. At least one hold of each refused customer goes (the newest), so the commit
 * loop always progresses even if their usage grew again since the refusal. `usageAfter` is each
 * such customer's usage once the kept holds commit.
 */
export function overLimit<E extends { readonly changes: readonly ShardChange[] }>(
  batch: readonly E[],
  refused: ReadonlyMap<string, number>,
  limit: number,
): { refusedEntries: { entry: E; hold: HoldView }[]; rest: E[]; usageAfter: Map<string, number> } {
  const usageAfter = new Map<string, number>();
  for (const [customer, current] of refused) usageAfter.set(customer, current);
  for (const entry of batch)
    for (const change of entry.changes)
      if (change.type === 'hold-ended' && usageAfter.has(change.customer))
        usageAfter.set(change.customer, usageAfter.get(change.customer)! - change.quantity);
  const refusedEntries: { entry: E; hold: HoldView }[] = [];
  let rest: E[] = [];
  const newestKept = new Map<string, { entry: E; hold: HoldView }>();
  for (const entry of batch) {
    const hold = createdHold(entry.changes);
    const usage = hold === undefined ? undefined : usageAfter.get(hold.customer);
    if (hold === undefined || usage === undefined) rest.push(entry);
    else if (usage + hold.quantity <= limit) {
      usageAfter.set(hold.customer, usage + hold.quantity);
      newestKept.set(hold.customer, { entry, hold });
      rest.push(entry);
    } else refusedEntries.push({ entry, hold });
  }
  const forced = [...newestKept].filter(([customer]) => !refusedEntries.some(({ hold }) => hold.customer === customer));
  if (forced.length > 0) {
    for (const [customer, newest] of forced) {
      usageAfter.set(customer, usageAfter.get(customer)! - newest.hold.quantity);
      refusedEntries.push(newest);
    }
    const taken = new Set(forced.map(([, { entry }]) => entry));
    rest = rest.filter((entry) => !taken.has(entry));
    refusedEntries.sort((a, b) => batch.indexOf(a.entry) - batch.indexOf(b.entry));
  }
  return { refusedEntries, rest, usageAfter };
}
