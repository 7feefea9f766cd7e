/**
 * The shard protocol's vocabulary: commands a shard decides, the typed results it answers with,
 * and the changes a winning decision asks the engine to persist. Plain data only (JSON-safe), so
 * the same types travel over NATS unchanged.
 */

/** A customer is the JWT subject of the caller. */
export type CustomerId = string;
/** Stable, human-readable seat id: `<section>-<row>-<number>`, e.g. `A-12-7`. */
export type SeatId = string;

interface CommandBase {
  /**
   * Idempotency key: a repeated key returns the first result; reused with another command, it is
   * refused. Keys are scoped per customer, in memory and in Postgres (a success's record per
   * event, shard, key and customer, the newest kept: ADR 0006, decision 9). The ingress sends a
   * digest of (customer, Idempotency-Key).
   */
  readonly key: string;
  readonly customer: CustomerId;
  /**
   * When the key's first result was a refusal, decide this command afresh instead of returning
   * that refusal (a success is always returned). The ingress sets it: it never stores a refusal,
   * so a client that retries after a 409 or 422 — a seat released since, a limit with room again —
   * gets a new decision, not the old answer. Without it, a refusal is replayed like a success.
   */
  readonly redecideRefusal?: boolean;
  /**
   * Only replay: answer the key's remembered result if there is one, and otherwise decide nothing
   * and remember nothing (`unavailable` naming no seat). The ingress asks every shard of a
   * best-available request this way before it walks them: a retry whose first attempt held on a
   * later shard must get that hold back, not a new one from an earlier shard that refused then.
   */
  readonly replayOnly?: boolean;
}

/** Hold these specific seats (all or nothing). */
export interface HoldSeatsCommand extends CommandBase {
  readonly type: 'hold';
  readonly seats: readonly SeatId[];
}

/** Hold `quantity` adjacent seats in one row of `section`, best rows first, avoiding single orphan seats. */
export interface HoldBestCommand extends CommandBase {
  readonly type: 'hold-best';
  readonly section: string;
  readonly quantity: number;
  /**
   * When true, accept only a placement that leaves no single orphan seat, else answer `unavailable`.
   * For a section spanning several shards the ingress asks each shard strictly first, then again
   * without it, so "no orphan when avoidable" holds across the whole section. Default false: prefer
   * orphan-free placements, fall back to one with an orphan when this shard has no other.
   */
  readonly strictOrphans?: boolean;
}

/** Hold `quantity` places of a general-admission pool. */
export interface HoldPoolCommand extends CommandBase {
  readonly type: 'hold-pool';
  readonly pool: string;
  readonly quantity: number;
}

/** Turn a live hold of this customer into a reservation. */
export interface ConfirmCommand extends CommandBase {
  readonly type: 'confirm';
  readonly holdId: string;
}

/** Release a live hold of this customer. */
export interface ReleaseCommand extends CommandBase {
  readonly type: 'release';
  readonly holdId: string;
}

/** One-shot hold + confirm of one seat: the classic flash-sale click. */
export interface ReserveCommand extends CommandBase {
  readonly type: 'reserve';
  readonly seat: SeatId;
}

export type ShardCommand = HoldSeatsCommand | HoldBestCommand | HoldPoolCommand | ConfirmCommand | ReleaseCommand | ReserveCommand;

/** A hold as answered to its owner. */
export interface HoldView {
  readonly holdId: string;
  readonly customer: CustomerId;
  /** Seats held (empty for a pool hold). */
  readonly seats: readonly SeatId[];
  /** GA pool and quantity, for pool holds. */
  readonly pool?: string;
  readonly quantity: number;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** A confirmed reservation. */
export interface ReservationView {
  readonly reservationId: string;
  readonly holdId: string;
  readonly customer: CustomerId;
  readonly seats: readonly SeatId[];
  readonly pool?: string;
  readonly quantity: number;
  readonly confirmedAt: number;
}

export type ShardResult =
  | { readonly ok: true; readonly type: 'held'; readonly hold: HoldView }
  | { readonly ok: true; readonly type: 'confirmed'; readonly reservation: ReservationView }
  | { readonly ok: true; readonly type: 'released'; readonly holdId: string }
  /**
   * Some requested seats (or pool places) are not available; `seats` names them. `sold` names
   * those of them that are sold — for good, so a caller may refuse them later without asking —
   * and `soldTo`, aligned with `sold` (same length, same order), the customer who bought each: a
   * caller refuses later requests for a seat only to other customers, since the buyer's retry must
   * reach the shard, which replays the buyer's success. The shard decides it in memory; the shard
   * host names only seats whose sale has committed, and a seat whose buyer is unknown is not named.
   * `soldTo` is for the caller, never for the client: the 409 names seats only. `pending` names
   * the seats whose sale is decided but not yet committed: the shard host announces each commit's
   * sales (protocol `salesSubject`), so a caller may wait briefly for that word instead of asking
   * again about them.
   */
  | {
      readonly ok: false;
      readonly type: 'unavailable';
      readonly seats: readonly SeatId[];
      readonly sold?: readonly SeatId[];
      readonly soldTo?: readonly CustomerId[];
      readonly pending?: readonly SeatId[];
      readonly message: string;
    }
  /** The customer's per-event limit would be exceeded. */
  | {
      readonly ok: false;
      readonly type: 'limit-exceeded';
      readonly limit: number;
      readonly current: number;
      readonly requested: number;
      readonly message: string;
    }
  /** Unknown hold id, or a hold of another customer (indistinguishable on purpose). */
  | { readonly ok: false; readonly type: 'hold-not-found'; readonly holdId: string; readonly message: string }
  /** The hold existed but its TTL passed (or it was released) before the command. */
  | { readonly ok: false; readonly type: 'hold-expired'; readonly holdId: string; readonly message: string }
  /** The hold was already confirmed; `reservationId` says into what. */
  | {
      readonly ok: false;
      readonly type: 'hold-confirmed';
      readonly holdId: string;
      readonly reservationId: string;
      readonly message: string;
    }
  /** Malformed command: unknown seat, duplicates, bad quantity, seats of another shard, … */
  | { readonly ok: false; readonly type: 'invalid'; readonly field: string; readonly message: string }
  /** The idempotency key was already used for a different command. */
  | { readonly ok: false; readonly type: 'idempotency-mismatch'; readonly message: string }
  /** The shard is not serving (loading, draining, fenced): retry, possibly elsewhere. */
  | { readonly ok: false; readonly type: 'not-serving'; readonly state: string; readonly retryable: true; readonly message: string };

export type ShardResultType = ShardResult['type'];

/**
 * The refusal of seats that are taken (`taken`), naming those that are sold (a subset) and, when
 * given, their buyers (`soldTo`, aligned with `sold`).
 */
export function seatsUnavailable(
  taken: readonly SeatId[],
  sold?: readonly SeatId[],
  soldTo?: readonly CustomerId[],
): Extract<ShardResult, { type: 'unavailable' }> {
  return {
    ok: false,
    type: 'unavailable',
    seats: taken,
    ...(sold === undefined || sold.length === 0 ? {} : soldTo === undefined ? { sold } : { sold, soldTo }),
    message: taken.length === 1 ? `seat ${taken[0]!} is not available` : `seats ${taken.join(', ')} are not available`,
  };
}

/** A seat's state in the inventory. */
export type SeatState = 'available' | 'held' | 'sold';

/**
 * What a winning decision changed, for the engine to persist in its group commit. Seat changes
 * carry the version the seat had before and after (optimistic, versioned writes).
 */
export type ShardChange =
  | {
      readonly type: 'seat';
      readonly seat: SeatId;
      readonly state: SeatState;
      readonly holdId: string | null;
      readonly fromVersion: number;
      readonly toVersion: number;
    }
  | {
      readonly type: 'pool';
      readonly pool: string;
      readonly held: number;
      readonly sold: number;
      readonly fromVersion: number;
      readonly toVersion: number;
    }
  | { readonly type: 'hold-created'; readonly hold: HoldView }
  | {
      readonly type: 'hold-ended';
      readonly holdId: string;
      readonly customer: CustomerId;
      readonly quantity: number;
      readonly reason: 'released' | 'expired';
    }
  | { readonly type: 'reservation-created'; readonly reservation: ReservationView }
  | {
      readonly type: 'idempotency';
      readonly key: string;
      readonly customer: CustomerId;
      readonly fingerprint: string;
      readonly result: ShardResult;
      readonly at: number;
    };
