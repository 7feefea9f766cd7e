/**
 * One shard's inventory: its seats, pools, holds, customers' tallies and idempotency memory, and
 * the rules that decide every command. Pure: no I/O, no clock (time is an argument), ids from an
 * injected generator. Mutable on purpose: it lives inside exactly one actor, and copying it per
 * decision would cost more than the decision (see ADR 0003).
 */
import { CUSTOMER_ID_RULE, isCustomerId, isStorableText } from './customer.js';
import { evictOldest } from '../evict.js';
import {
  seatsUnavailable,
  type CustomerId,
  type HoldView,
  type ReservationView,
  type SeatId,
  type SeatState,
  type ShardChange,
  type ShardCommand,
  type ShardResult,
} from './commands.js';
import { findBestPlacement, type SeatGrid } from './best-available.js';
import { ExpiryQueue } from './expiry-queue.js';
import { fingerprintOf, IdempotencyMemory, type IdempotencyRecord } from './idempotency.js';
import { parseSeatNumber } from './layout.js';
import type { ShardMap } from './shard-map.js';
import { resolveShardSettings, ShardSettingsError, type ShardSettings } from './shard-settings.js';
import { SnapshotError, type EndedHoldRecord, type PoolRecord, type SeatRecord, type ShardSnapshot } from './snapshot.js';

/** Makes the ids of new holds and reservations (unique per event; the engine decides the format). */
export type NewId = (kind: 'hold' | 'reservation') => string;

/** Which shard of which mapped layout. */
export interface ShardScope {
  readonly map: ShardMap;
  readonly shard: number;
}

/** The answer to one command and the changes the engine must persist before answering it. */
export interface Decision {
  readonly result: ShardResult;
  /** Empty for every failure and for replays: losers never touch the database. */
  readonly changes: readonly ShardChange[];
  /** True when the result is the key's remembered one, given again: nothing was decided (an idempotent replay). */
  readonly replayed?: true;
}

/** Total / available / held / sold seats or places. */
export interface InventoryCounts {
  readonly total: number;
  readonly available: number;
  readonly held: number;
  readonly sold: number;
}

/** Counts of one section (this shard's rows of it) or pool. */
export interface UnitCounts extends InventoryCounts {
  readonly id: string;
}

/** Read model of a shard's stock. */
export interface ShardCounts {
  readonly overall: InventoryCounts;
  readonly sections: readonly UnitCounts[];
  readonly pools: readonly UnitCounts[];
}

/** One seat in the read model. */
export interface SeatStateView {
  readonly seat: SeatId;
  readonly state: SeatState;
  readonly version: number;
}

/** Sizes of the in-memory structures, for metrics. */
export interface InventoryStats {
  readonly seats: number;
  readonly holds: number;
  readonly endedHolds: number;
  readonly customers: number;
  readonly rememberedResults: number;
  readonly rememberedFailures: number;
}

const AVAILABLE = 0;
const HELD = 1;
const SOLD = 2;
const STATE_NAMES: readonly SeatState[] = ['available', 'held', 'sold'];
const STATE_CODES: ReadonlyMap<unknown, number> = new Map([
  ['available', AVAILABLE],
  ['held', HELD],
  ['sold', SOLD],
]);
const NO_CHANGES: readonly ShardChange[] = Object.freeze([]);
const MAX_TEXT = 200;
/**
 * Longest fingerprint a refusal is remembered with (characters). A hold's fingerprint is its seat
 * list: the ingress sends at most 100 seats (about 4,000 characters), but a client talking to the
 * shard directly may send a list near NATS's largest message, refused by its length — and each such
 * refusal, remembered under a fresh key, kept up to a megabyte in the failure memory. Not
 * remembering one is harmless: the same command is decided again the same way.
 */
const MAX_REMEMBERED_REFUSAL_FINGERPRINT = 8192;

interface EndedHold {
  readonly customer: CustomerId;
  readonly outcome: 'released' | 'expired' | 'confirmed';
  readonly reservationId: string | undefined;
  readonly at: number;
}

/** How many recent hold creations `abort` can undo (a group commit holds far fewer). */
export const ABORT_WINDOW = 4096;

interface Tally {
  held: number;
  reserved: number;
}

function invalid(field: string, message: string): ShardResult {
  return { ok: false, type: 'invalid', field, message };
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT;
}

/** The inventory of one shard. See the module comment. */
export class ShardInventory {
  readonly shard: number;
  private rules: ShardSettings;
  private readonly map: ShardMap;
  private readonly newId: NewId;

  // Seats, by local index (layout order). Typed arrays keep 100,000 seats in a few MB.
  private readonly seatState: Uint8Array;
  private readonly seatVersion: Float64Array;
  private readonly seatHold: (string | null)[];
  /**
   * Who bought each sold seat (null for other seats, and for a sold seat restored without its
   * buyer): named with the seat in a refusal, so a caller that remembers sold seats refuses only
   * other customers (see `soldTo`). An array of references to the customers' strings: no object per seat.
   */
  private readonly seatBuyer: (CustomerId | null)[];
  private readonly seatRow: Int32Array;
  // Rows, by local index.
  private readonly rowKeys = new Map<string, number>();
  private readonly rowPrefix: string[] = [];
  private readonly rowSection: Int32Array;
  private readonly grid: SeatGrid;
  // Sections, by local index: this shard's rows of them.
  private readonly sectionIds: string[] = [];
  private readonly sectionKeys = new Map<string, number>();
  private readonly sectionFirstRow: number[] = [];
  private readonly sectionEndRow: number[] = [];
  private readonly sectionTotal: number[] = [];
  private readonly sectionHeld: number[] = [];
  private readonly sectionSold: number[] = [];
  // Pools, by local index.
  private readonly poolIds: string[] = [];
  private readonly poolKeys = new Map<string, number>();
  private readonly poolCapacity: number[] = [];
  private readonly poolHeld: number[] = [];
  private readonly poolSold: number[] = [];
  private readonly poolVersion: number[] = [];

  /** Live holds by id. The view is the record: pool index via `poolKeys`, seat indexes via `seatIndex`. */
  private readonly holds = new Map<string, HoldView>();
  // A ring of the last ABORT_WINDOW hold creations: what `abort` needs, kept without a per-hold object.
  private readonly recentHold = new Array<string | undefined>(ABORT_WINDOW);
  private readonly recentKey = new Array<string | undefined>(ABORT_WINDOW);
  /** Pool version the creation produced, or -1 for seats. */
  private readonly recentPoolVersion = new Float64Array(ABORT_WINDOW);
  /** Seat index of a one-shot reserve, or -1. */
  private readonly recentReserved = new Int32Array(ABORT_WINDOW);
  private recentNext = 0;
  /** Whether the earliest expiry entry is known to belong to a live hold (see nextExpiryAt). */
  private expiryTopLive = false;
  private readonly ended = new Map<string, EndedHold>();
  private readonly expiry = new ExpiryQueue();
  private readonly customers = new Map<CustomerId, Tally>();
  private readonly memory: IdempotencyMemory;
  private nextPruneAt = -Infinity;
  /** Scratch list of the seat indexes of the command being decided (no allocation per command). */
  private readonly scratch: number[] = [];
  /** Scratch map of a hold's seat indexes to their first position in its list: duplicates found in linear time. */
  private readonly seatPositions = new Map<number, number>();

  private constructor(scope: ShardScope, settings: ShardSettings, newId: NewId) {
    const summary = scope.map.shards[scope.shard];
    if (summary === undefined) throw new ShardSettingsError(`no shard ${scope.shard}: the map has ${scope.map.shardCount} shards`);
    this.map = scope.map;
    this.shard = scope.shard;
    this.rules = settings;
    this.newId = newId;
    this.memory = new IdempotencyMemory(settings.idempotencyTtlMs, settings.maxRememberedResults, settings.maxRememberedFailures);

    const slice = scope.map.layoutOfShard(scope.shard);
    let rows = 0;
    for (const section of slice.sections) rows += section.rows.length;
    const seats = summary.seats;
    this.seatState = new Uint8Array(seats);
    this.seatVersion = new Float64Array(seats);
    this.seatHold = new Array<string | null>(seats).fill(null);
    this.seatBuyer = new Array<CustomerId | null>(seats).fill(null);
    this.seatRow = new Int32Array(seats);
    this.rowSection = new Int32Array(rows);
    const grid: SeatGrid = {
      state: this.seatState,
      rowStart: new Int32Array(rows),
      rowLength: new Int32Array(rows),
      rowFree: new Int32Array(rows),
      rowMaxRun: new Int32Array(rows),
      rowMaxRunStart: new Int32Array(rows),
      rowRunBelowMax: new Uint8Array(rows),
      rowFirstFree: new Int32Array(rows),
    };
    this.grid = grid;
    let r = 0;
    let seat = 0;
    slice.sections.forEach((section, s) => {
      this.sectionIds.push(section.id);
      this.sectionKeys.set(section.id, s);
      this.sectionFirstRow.push(r);
      let total = 0;
      for (const row of section.rows) {
        this.rowKeys.set(`${section.id}-${row.id}`, r);
        this.rowPrefix.push(`${section.id}-${row.id}-`);
        this.rowSection[r] = s;
        grid.rowStart[r] = seat;
        grid.rowLength[r] = row.seats;
        grid.rowFree[r] = row.seats;
        // One run, the whole row (rowRunBelowMax is 0: no other run).
        grid.rowMaxRun[r] = row.seats;
        grid.rowMaxRunStart[r] = seat;
        grid.rowFirstFree[r] = seat;
        this.seatRow.fill(r, seat, seat + row.seats);
        seat += row.seats;
        total += row.seats;
        r++;
      }
      this.sectionEndRow.push(r);
      this.sectionTotal.push(total);
      this.sectionHeld.push(0);
      this.sectionSold.push(0);
    });
    slice.pools.forEach((pool, p) => {
      this.poolIds.push(pool.id);
      this.poolKeys.set(pool.id, p);
      this.poolCapacity.push(pool.capacity);
      this.poolHeld.push(0);
      this.poolSold.push(0);
      this.poolVersion.push(0);
    });
  }

  /** A fresh shard: every seat available at version 0, pools empty. */
  static create(scope: ShardScope, settings: ShardSettings, newId: NewId): ShardInventory {
    return new ShardInventory(scope, settings, newId);
  }

  /**
   * Rebuilds a shard from its persisted rows. Throws SnapshotError when the snapshot contradicts
   * itself or the layout. Holds past their TTL are kept: the caller runs `expireDue(now)` next and
   * persists what it returns, exactly as the actor's timer would have.
   */
  static restore(scope: ShardScope, settings: ShardSettings, snapshot: ShardSnapshot, now: number, newId: NewId): ShardInventory {
    const inventory = new ShardInventory(scope, settings, newId);
    inventory.load(snapshot, now);
    return inventory;
  }

  /** The rules this shard decides by. */
  get settings(): ShardSettings {
    return this.rules;
  }

  /**
   * Decides by new event rules from now on (the event's hold TTL or customer limit changed while
   * the shard is served). Holds already made keep their expiry — a hold is never extended or
   * shortened — and a customer above a lowered limit keeps what they have but gets no more.
   * Throws ShardSettingsError for rules out of bounds, changing nothing.
   */
  applyRules(rules: Pick<ShardSettings, 'holdTtlMs' | 'customerLimit'>): void {
    const next = resolveShardSettings({ ...this.rules, holdTtlMs: rules.holdTtlMs, customerLimit: rules.customerLimit });
    this.rules = next;
  }

  // ---------------------------------------------------------------------------------------------
  // Deciding

  /**
   * Decides one command at time `now`: validates it, answers a replayed key from memory, else
   * applies the rules and updates the state in place, all or nothing. Never throws for an expected
   * outcome; every failure is a typed result with no changes.
   */
  decide(command: ShardCommand, now: number): Decision {
    if (now >= this.nextPruneAt) this.prune(now);
    const problem = this.validate(command);
    if (problem !== undefined) return { result: problem, changes: NO_CHANGES };
    const customer = command.customer;
    const key = command.key;
    const fingerprint = fingerprintOf(command);
    let prior = this.memory.lookup(customer, key, now);
    if (prior !== undefined && !prior.result.ok && command.redecideRefusal === true) {
      // The caller asks again after a refusal it was told about (see CommandBase.redecideRefusal).
      this.memory.forgetRefusal(customer, key);
      prior = undefined;
    }
    if (prior === undefined && command.replayOnly === true) {
      return { result: { ok: false, type: 'unavailable', seats: [], message: `nothing decided under key ${key}` }, changes: NO_CHANGES };
    }
    if (prior !== undefined) {
      if (prior.fingerprint === fingerprint) return { result: prior.result, changes: NO_CHANGES, replayed: true };
      return {
        result: {
          ok: false,
          type: 'idempotency-mismatch',
          message: `idempotency key ${JSON.stringify(command.key)} was already used for a different command (${prior.fingerprint})`,
        },
        changes: NO_CHANGES,
      };
    }
    const changes: ShardChange[] = [];
    let result: ShardResult;
    switch (command.type) {
      case 'hold':
        result = this.holdSeats(customer, command.seats, key, now, changes);
        break;
      case 'hold-best':
        result = this.holdBest(customer, command.section, command.quantity, command.strictOrphans === true, key, now, changes);
        break;
      case 'hold-pool':
        result = this.holdPool(customer, command.pool, command.quantity, key, now, changes);
        break;
      case 'confirm':
        result = this.confirm(customer, command.holdId, now, changes);
        break;
      case 'release':
        result = this.release(customer, command.holdId, now, changes);
        break;
      case 'reserve':
        result = this.reserve(customer, command.seat, key, now, changes);
        break;
    }
    if (result.ok) {
      const record = { type: 'idempotency', key, customer, fingerprint, result, at: now } as const;
      changes.push(record);
      this.memory.rememberSuccess(record);
      return { result, changes };
    }
    if (fingerprint.length <= MAX_REMEMBERED_REFUSAL_FINGERPRINT)
      this.memory.rememberFailure(key, { customer, fingerprint, result, at: now });
    return { result, changes: NO_CHANGES };
  }

  /**
   * Checks everything that depends on the command alone (and the layout): shape, sizes, seats
   * and their shard, sections, pools. Leaves the seat indexes of hold/reserve in `scratch` — none
   * for a hold of more seats than the customer limit, which holdSeats refuses by its length alone.
   */
  private validate(command: ShardCommand): ShardResult | undefined {
    if (typeof command !== 'object' || command === null) return invalid('command', 'command must be an object');
    // Stored with a success (and NUL-free for idempotencyScope): refused like a customer id that jsonb cannot hold.
    if (!isText(command.key) || !isStorableText(command.key))
      return invalid('key', `key must be a string of 1-${MAX_TEXT} characters, without NUL or a lone surrogate`);
    if (!isCustomerId(command.customer)) return invalid('customer', `customer must be a string of ${CUSTOMER_ID_RULE}`);
    const scratch = this.scratch;
    scratch.length = 0;
    switch (command.type) {
      case 'hold': {
        const seats: unknown = command.seats;
        if (!Array.isArray(seats)) return invalid('seats', 'seats must be an array of seat ids');
        if (seats.length === 0) return invalid('seats', 'seats must name at least one seat');
        const tooMany = this.tooMany('seats', seats.length);
        if (tooMany !== undefined) return tooMany;
        // More seats than the customer may have is the limit exceeded whatever they name (holdSeats
        // answers it from the length): not worth resolving — a list from a client that bypassed
        // the ingress's cap may be long, and the shard decides nothing else meanwhile.
        if (seats.length > this.rules.customerLimit) return undefined;
        const positions = this.seatPositions;
        positions.clear();
        for (let i = 0; i < seats.length; i++) {
          const problem = this.resolveSeat(seats[i], i);
          if (problem !== undefined) return problem;
          const index = scratch[i]!;
          const j = positions.get(index);
          if (j !== undefined) return invalid(`seats[${i}]`, `duplicate seat ${seats[i] as string} (also seats[${j}])`);
          positions.set(index, i);
        }
        return undefined;
      }
      case 'reserve':
        return this.resolveSeat(command.seat, -1);
      case 'hold-best': {
        const problem = this.checkQuantity(command.quantity);
        if (problem !== undefined) return problem;
        if (command.strictOrphans !== undefined && typeof command.strictOrphans !== 'boolean') {
          return invalid('strictOrphans', 'strictOrphans must be a boolean');
        }
        const section: unknown = command.section;
        if (typeof section !== 'string') return invalid('section', 'section must be a string');
        if (!this.sectionKeys.has(section)) {
          const owners = this.map.shardsOfSection(section);
          if (owners === undefined) return invalid('section', `unknown section ${JSON.stringify(section)}`);
          return invalid('section', `section ${section} has no rows in shard ${this.shard} (its shards: ${owners.join(', ')})`);
        }
        const longest = this.map.longestRowOfSection(section);
        if (command.quantity > longest) {
          return invalid(
            'quantity',
            `${command.quantity} adjacent seats cannot exist in section ${section}: its longest row has ${longest}`,
          );
        }
        return undefined;
      }
      case 'hold-pool': {
        const problem = this.checkQuantity(command.quantity);
        if (problem !== undefined) return problem;
        const pool: unknown = command.pool;
        if (typeof pool !== 'string') return invalid('pool', 'pool must be a string');
        if (!this.poolKeys.has(pool)) {
          const owner = this.map.shardOfPool(pool);
          if (owner === undefined) return invalid('pool', `unknown pool ${JSON.stringify(pool)}`);
          return invalid('pool', `pool ${pool} belongs to shard ${owner}, not shard ${this.shard}`);
        }
        return undefined;
      }
      case 'confirm':
      case 'release':
        if (!isText(command.holdId)) return invalid('holdId', `holdId must be a string of 1-${MAX_TEXT} characters`);
        return undefined;
      default:
        return invalid('type', `unknown command type ${JSON.stringify((command as { type?: unknown }).type)}`);
    }
  }

  private checkQuantity(quantity: unknown): ShardResult | undefined {
    if (typeof quantity !== 'number' || !Number.isInteger(quantity)) return invalid('quantity', 'quantity must be an integer');
    if (quantity <= 0) return invalid('quantity', `quantity must be at least 1, got ${quantity}`);
    return this.tooMany('quantity', quantity);
  }

  /**
   * More seats or places than one command may take (`maxSeatsPerRequest`) is an invalid command —
   * unless it is more than the customer limit too: that is the limit exceeded, decided (and
   * remembered) like a request that fits but comes on top of what the customer has.
   */
  private tooMany(field: 'seats' | 'quantity', requested: number): ShardResult | undefined {
    const { maxSeatsPerRequest, customerLimit } = this.rules;
    if (requested <= maxSeatsPerRequest || requested > customerLimit) return undefined;
    return invalid(field, `${requested} ${field === 'seats' ? 'seats' : 'places'} requested; at most ${maxSeatsPerRequest} per request`);
  }

  /** Pushes the local index of `seat` (at `position` of `seats`, or -1 for `seat`) onto scratch, or says why it is not a seat of this shard. */
  private resolveSeat(seat: unknown, position: number): ShardResult | undefined {
    const index = typeof seat === 'string' ? this.seatIndex(seat) : -1;
    if (index >= 0) {
      this.scratch.push(index);
      return undefined;
    }
    // Only a failure names its field: no string is built on the way to a success.
    const field = position < 0 ? 'seat' : `seats[${position}]`;
    if (typeof seat !== 'string') return invalid(field, 'seat id must be a string');
    const owner = seat.length <= MAX_TEXT ? this.map.shardOfSeat(seat) : undefined;
    if (owner === undefined) return invalid(field, `unknown seat ${JSON.stringify(seat.slice(0, MAX_TEXT))}`);
    return invalid(field, `seat ${seat} belongs to shard ${owner}, not shard ${this.shard}`);
  }

  /** Local index of a seat id of this shard, or -1. */
  private seatIndex(seat: string): number {
    const last = seat.lastIndexOf('-');
    if (last <= 0) return -1;
    const row = this.rowKeys.get(seat.slice(0, last));
    if (row === undefined) return -1;
    const number = parseSeatNumber(seat, last + 1);
    if (number < 1 || number > this.grid.rowLength[row]!) return -1;
    return this.grid.rowStart[row]! + number - 1;
  }

  private seatIdAt(index: number): SeatId {
    const row = this.seatRow[index]!;
    return this.rowPrefix[row]! + (index - this.grid.rowStart[row]! + 1);
  }

  /** `tally` is the customer's, as found in `customers` (one lookup serves the check and the update). */
  private limitExceeded(tally: Tally | undefined, requested: number): ShardResult | undefined {
    const current = tally === undefined ? 0 : tally.held + tally.reserved;
    const limit = this.rules.customerLimit;
    if (current + requested <= limit) return undefined;
    return {
      ok: false,
      type: 'limit-exceeded',
      limit,
      current,
      requested,
      message: `customer holds or has reserved ${current} of at most ${limit}; ${requested} more would exceed the limit`,
    };
  }

  private tally(customer: CustomerId): Tally {
    let tally = this.customers.get(customer);
    if (tally === undefined) {
      tally = { held: 0, reserved: 0 };
      this.customers.set(customer, tally);
    }
    return tally;
  }

  private untally(customer: CustomerId, tally: Tally): void {
    if (tally.held === 0 && tally.reserved === 0) this.customers.delete(customer);
  }

  private holdSeats(customer: CustomerId, seats: readonly SeatId[], key: string, now: number, changes: ShardChange[]): ShardResult {
    const indexes = this.scratch;
    const tally = this.customers.get(customer);
    // By the list's length: a list longer than the limit was not resolved (see validate), and is refused here.
    const exceeded = this.limitExceeded(tally, seats.length);
    if (exceeded !== undefined) return exceeded;
    let taken: SeatId[] | undefined;
    let sold: SeatId[] | undefined;
    let soldTo: CustomerId[] | undefined;
    for (let i = 0; i < indexes.length; i++) {
      const index = indexes[i]!;
      const state = this.seatState[index];
      if (state === AVAILABLE) continue;
      (taken ??= []).push(seats[i]!);
      const buyer = this.seatBuyer[index]!;
      // A sold seat whose buyer is unknown is not named sold: the caller asks again rather than guess.
      if (state === SOLD && buyer !== null) {
        (sold ??= []).push(seats[i]!);
        (soldTo ??= []).push(buyer);
      }
    }
    if (taken !== undefined) return seatsUnavailable(taken, sold, soldTo);
    const hold = this.createSeatHold(customer, tally, indexes, seats, key, now, changes);
    return { ok: true, type: 'held', hold };
  }

  private holdBest(
    customer: CustomerId,
    section: string,
    quantity: number,
    strict: boolean,
    key: string,
    now: number,
    changes: ShardChange[],
  ): ShardResult {
    const tally = this.customers.get(customer);
    const exceeded = this.limitExceeded(tally, quantity);
    if (exceeded !== undefined) return exceeded;
    const s = this.sectionKeys.get(section)!;
    const start = findBestPlacement(this.grid, this.sectionFirstRow[s]!, this.sectionEndRow[s]!, quantity, strict);
    if (start < 0) {
      return {
        ok: false,
        type: 'unavailable',
        seats: [],
        message: `no ${quantity} adjacent available seats in one row of section ${section}${strict ? ' without leaving a single seat' : ''} in shard ${this.shard}`,
      };
    }
    const indexes = this.scratch;
    indexes.length = 0;
    const ids: SeatId[] = [];
    const row = this.seatRow[start]!;
    const prefix = this.rowPrefix[row]!;
    const first = start - this.grid.rowStart[row]! + 1;
    for (let k = 0; k < quantity; k++) {
      indexes.push(start + k);
      ids.push(prefix + (first + k));
    }
    const hold = this.createSeatHold(customer, tally, indexes, ids, key, now, changes);
    return { ok: true, type: 'held', hold };
  }

  private holdPool(customer: CustomerId, poolId: string, quantity: number, key: string, now: number, changes: ShardChange[]): ShardResult {
    const tally = this.customers.get(customer);
    const exceeded = this.limitExceeded(tally, quantity);
    if (exceeded !== undefined) return exceeded;
    const p = this.poolKeys.get(poolId)!;
    const left = this.poolCapacity[p]! - this.poolHeld[p]! - this.poolSold[p]!;
    if (left < quantity) {
      return { ok: false, type: 'unavailable', seats: [], message: `pool ${poolId} has ${left} places left; ${quantity} requested` };
    }
    const holdId = this.freshHoldId();
    const view: HoldView = {
      holdId,
      customer,
      seats: [],
      pool: poolId,
      quantity,
      createdAt: now,
      expiresAt: now + this.rules.holdTtlMs,
    };
    changes.push({ type: 'hold-created', hold: view });
    this.poolHeld[p]! += quantity;
    changes.push(this.poolChange(p));
    this.holds.set(holdId, view);
    this.recordCreation(holdId, key, this.poolVersion[p]!, -1);
    this.scheduleExpiry(view);
    (tally ?? this.tally(customer)).held += quantity;
    return { ok: true, type: 'held', hold: view };
  }

  private createSeatHold(
    customer: CustomerId,
    tally: Tally | undefined,
    indexes: readonly number[],
    ids: readonly SeatId[],
    key: string,
    now: number,
    changes: ShardChange[],
  ): HoldView {
    const holdId = this.freshHoldId();
    const view: HoldView = { holdId, customer, seats: ids, quantity: ids.length, createdAt: now, expiresAt: now + this.rules.holdTtlMs };
    changes.push({ type: 'hold-created', hold: view });
    for (let k = 0; k < indexes.length; k++) {
      const index = indexes[k]!;
      changes.push(this.setSeat(index, HELD, holdId, ids[k]!));
    }
    this.holds.set(holdId, view);
    this.recordCreation(holdId, key, -1, -1);
    this.scheduleExpiry(view);
    (tally ?? this.tally(customer)).held += indexes.length;
    return view;
  }

  /** Ids must be unique (the engine's generator guarantees it; checking would cost a hash probe per hold). */
  private freshHoldId(): string {
    return this.newId('hold');
  }

  private recordCreation(holdId: string, key: string, poolVersion: number, reservedSeat: number): void {
    const slot = this.recentNext;
    this.recentHold[slot] = holdId;
    this.recentKey[slot] = key;
    this.recentPoolVersion[slot] = poolVersion;
    this.recentReserved[slot] = reservedSeat;
    this.recentNext = (slot + 1) % ABORT_WINDOW;
  }

  /**
   * Moves a seat to `state` (bumping its version) and keeps the row/section counters; returns the
   * change. `buyer`: the customer a seat moved to SOLD is sold to.
   */
  private setSeat(index: number, state: number, holdId: string | null, id: SeatId, buyer: CustomerId | null = null): ShardChange {
    const previous = this.seatState[index]!;
    const row = this.seatRow[index]!;
    const section = this.rowSection[row]!;
    const grid = this.grid;
    if (previous === HELD) this.sectionHeld[section]!--;
    else if (previous === SOLD) this.sectionSold[section]!--;
    if (state === HELD) this.sectionHeld[section]!++;
    else if (state === SOLD) this.sectionSold[section]!++;
    if (previous === AVAILABLE) grid.rowFree[row]!--;
    if (state === AVAILABLE) {
      grid.rowFree[row]!++;
      if (index < grid.rowFirstFree[row]!) grid.rowFirstFree[row] = index;
    }
    // Forgets what the placement search cached about the row (all of it hangs on rowMaxRun ≥ 0).
    grid.rowMaxRun[row] = -1;
    this.seatState[index] = state;
    this.seatHold[index] = holdId;
    this.seatBuyer[index] = state === SOLD ? buyer : null;
    const fromVersion = this.seatVersion[index]!;
    const toVersion = fromVersion + 1;
    this.seatVersion[index] = toVersion;
    return { type: 'seat', seat: id, state: STATE_NAMES[state]!, holdId, fromVersion, toVersion };
  }

  private poolChange(p: number): ShardChange {
    const fromVersion = this.poolVersion[p]!;
    const toVersion = fromVersion + 1;
    this.poolVersion[p] = toVersion;
    return { type: 'pool', pool: this.poolIds[p]!, held: this.poolHeld[p]!, sold: this.poolSold[p]!, fromVersion, toVersion };
  }

  /** The live hold `holdId` of `customer`, or the failure to answer. */
  private liveHold(customer: CustomerId, holdId: string, now: number): HoldView | ShardResult {
    const record = this.holds.get(holdId);
    if (record !== undefined && record.customer === customer) {
      if (record.expiresAt > now) return record;
      return {
        ok: false,
        type: 'hold-expired',
        holdId,
        message: `hold ${holdId} expired at ${new Date(record.expiresAt).toISOString()}`,
      };
    }
    const ended = record === undefined ? this.endedHold(holdId, now) : undefined;
    if (ended !== undefined && ended.customer === customer) {
      if (ended.outcome === 'confirmed') {
        return {
          ok: false,
          type: 'hold-confirmed',
          holdId,
          reservationId: ended.reservationId!,
          message: `hold ${holdId} was already confirmed as reservation ${ended.reservationId!}`,
        };
      }
      return { ok: false, type: 'hold-expired', holdId, message: `hold ${holdId} was ${ended.outcome}` };
    }
    return { ok: false, type: 'hold-not-found', holdId, message: `no hold ${holdId} of this customer` };
  }

  private endedHold(holdId: string, now: number): EndedHold | undefined {
    const ended = this.ended.get(holdId);
    if (ended === undefined || ended.at + this.rules.idempotencyTtlMs > now) return ended;
    this.ended.delete(holdId);
    return undefined;
  }

  private rememberEnded(holdId: string, ended: EndedHold): void {
    if (this.rules.maxEndedHolds === 0) return;
    this.ended.set(holdId, ended);
    evictOldest(this.ended, this.rules.maxEndedHolds);
  }

  private confirm(customer: CustomerId, holdId: string, now: number, changes: ShardChange[]): ShardResult {
    const view = this.liveHold(customer, holdId, now);
    if ('ok' in view) return view;
    for (const seat of view.seats) changes.push(this.setSeat(this.seatIndex(seat), SOLD, holdId, seat, customer));
    if (view.pool !== undefined) {
      const p = this.poolKeys.get(view.pool)!;
      this.poolHeld[p]! -= view.quantity;
      this.poolSold[p]! += view.quantity;
      changes.push(this.poolChange(p));
    }
    const reservation: ReservationView = {
      reservationId: this.newId('reservation'),
      holdId,
      customer,
      seats: view.seats,
      ...(view.pool === undefined ? {} : { pool: view.pool }),
      quantity: view.quantity,
      confirmedAt: now,
    };
    changes.push({ type: 'reservation-created', reservation });
    this.dropHold(holdId);
    const tally = this.tally(customer);
    tally.held -= view.quantity;
    tally.reserved += view.quantity;
    this.rememberEnded(holdId, { customer, outcome: 'confirmed', reservationId: reservation.reservationId, at: now });
    return { ok: true, type: 'confirmed', reservation };
  }

  private release(customer: CustomerId, holdId: string, now: number, changes: ShardChange[]): ShardResult {
    const view = this.liveHold(customer, holdId, now);
    if ('ok' in view) return view;
    this.endHold(view, 'released', now, changes);
    return { ok: true, type: 'released', holdId };
  }

  /** Frees a live hold's seats or places and records how it ended. */
  private endHold(view: HoldView, reason: 'released' | 'expired', now: number, changes: ShardChange[]): void {
    for (const seat of view.seats) changes.push(this.setSeat(this.seatIndex(seat), AVAILABLE, null, seat));
    if (view.pool !== undefined) {
      const p = this.poolKeys.get(view.pool)!;
      this.poolHeld[p]! -= view.quantity;
      changes.push(this.poolChange(p));
    }
    changes.push({ type: 'hold-ended', holdId: view.holdId, customer: view.customer, quantity: view.quantity, reason });
    this.dropHold(view.holdId);
    const tally = this.tally(view.customer);
    tally.held -= view.quantity;
    this.untally(view.customer, tally);
    this.rememberEnded(view.holdId, { customer: view.customer, outcome: reason, reservationId: undefined, at: now });
  }

  private reserve(customer: CustomerId, seat: SeatId, key: string, now: number, changes: ShardChange[]): ShardResult {
    const index = this.scratch[0]!;
    const tally = this.customers.get(customer);
    const exceeded = this.limitExceeded(tally, 1);
    if (exceeded !== undefined) return exceeded;
    const state = this.seatState[index];
    if (state !== AVAILABLE) {
      const buyer = state === SOLD ? this.seatBuyer[index]! : null;
      return buyer === null ? seatsUnavailable([seat]) : seatsUnavailable([seat], [seat], [buyer]);
    }
    const holdId = this.freshHoldId();
    const seats = [seat];
    const hold: HoldView = { holdId, customer, seats, quantity: 1, createdAt: now, expiresAt: now + this.rules.holdTtlMs };
    const reservation: ReservationView = {
      reservationId: this.newId('reservation'),
      holdId,
      customer,
      seats,
      quantity: 1,
      confirmedAt: now,
    };
    changes.push({ type: 'hold-created', hold });
    changes.push(this.setSeat(index, SOLD, holdId, seat, customer));
    changes.push({ type: 'reservation-created', reservation });
    (tally ?? this.tally(customer)).reserved += 1;
    this.rememberEnded(holdId, { customer, outcome: 'confirmed', reservationId: reservation.reservationId, at: now });
    this.recordCreation(holdId, key, -1, index);
    return { ok: true, type: 'confirmed', reservation };
  }

  // ---------------------------------------------------------------------------------------------
  // Time

  /**
   * Ends every hold whose `expiresAt ≤ now` and returns the changes to persist (empty when none).
   * A pure rule of time: a restored shard applies the same one.
   */
  expireDue(now: number): ShardChange[] {
    const changes: ShardChange[] = [];
    const expiry = this.expiry;
    while (expiry.peekTime() <= now) {
      const holdId = expiry.peekId();
      const at = expiry.peekTime();
      expiry.pop();
      this.expiryTopLive = false;
      const view = this.holds.get(holdId);
      if (view !== undefined && view.expiresAt === at) this.endHold(view, 'expired', now, changes);
    }
    return changes;
  }

  /**
   * Ends every live hold now, as expired, and returns the changes to persist: the sale closed,
   * and a hold that can no longer be confirmed must not keep its seats from the final count.
   */
  expireAll(now: number): ShardChange[] {
    const changes: ShardChange[] = [];
    for (const view of [...this.holds.values()]) this.endHold(view, 'expired', now, changes);
    return changes;
  }

  /** When the earliest live hold expires (epoch ms), or Infinity when none. */
  nextExpiryAt(): number {
    const expiry = this.expiry;
    // The actor asks before every command: skip the hold lookup while the earliest entry is known live.
    if (this.expiryTopLive) return expiry.peekTime();
    while (expiry.size > 0) {
      const view = this.holds.get(expiry.peekId());
      if (view !== undefined && view.expiresAt === expiry.peekTime()) {
        this.expiryTopLive = true;
        return expiry.peekTime();
      }
      expiry.pop(); // the hold ended early: drop its entry
    }
    return Infinity;
  }

  /** Queues a hold's expiry; a new earliest entry must be checked again. */
  private scheduleExpiry(view: HoldView): void {
    if (view.expiresAt < this.expiry.peekTime()) this.expiryTopLive = false;
    this.expiry.push(view.expiresAt, view.holdId);
  }

  /** Removes a live hold (confirmed, ended or aborted); its expiry entry may have been the earliest. */
  private dropHold(holdId: string): void {
    this.holds.delete(holdId);
    this.expiryTopLive = false;
  }

  private prune(now: number): void {
    this.memory.prune(now);
    const ttl = this.rules.idempotencyTtlMs;
    for (const [holdId, ended] of this.ended) {
      if (ended.at + ttl > now) break;
      this.ended.delete(holdId);
    }
    this.nextPruneAt = now + Math.min(1000, ttl);
  }

  // ---------------------------------------------------------------------------------------------
  // Undo

  /**
   * Undoes, in memory and without changes, the creation of hold `holdId` (by hold, hold-best,
   * hold-pool or reserve) whose changes the engine could not persist: seats and places return to
   * what they were, versions included, and the idempotency key is forgotten so a retry is decided
   * afresh. Works for the last ABORT_WINDOW creations (a group commit is far smaller); abort in
   * reverse decision order. Returns false when the hold is no longer as its creation left it (it
   * was confirmed, released or expired since, or a later decision moved its pool's counters —
   * unless the caller adjusts those, see `laterAdjusted`): then only a restore from the database
   * is exact.
   *
   * `writtenPoolVersion`: the caller persists the hold's pool itself, at this version, from the
   * counters its batch recorded minus the aborted places (a later decision of the same batch
   * recorded counters that still counted them). Then the places return, the pool's version stays,
   * and later decisions of the batch are no obstacle; decisions beyond it (the pool's version
   * past `writtenPoolVersion`) still are — unless `laterAdjusted`: the caller also takes the
   * places out of the counters those later decisions recorded, before they are written.
   */
  abort(holdId: string, writtenPoolVersion?: number, laterAdjusted = false): boolean {
    let slot = -1;
    for (let back = 1; back <= ABORT_WINDOW; back++) {
      const candidate = (this.recentNext - back + ABORT_WINDOW) % ABORT_WINDOW;
      if (this.recentHold[candidate] === holdId) {
        slot = candidate;
        break;
      }
    }
    if (slot < 0) return false;
    const key = this.recentKey[slot]!;
    let customer: CustomerId;
    const view = this.holds.get(holdId);
    if (view !== undefined) {
      const p = view.pool === undefined ? -1 : this.poolKeys.get(view.pool)!;
      if (p >= 0) {
        const version = this.poolVersion[p]!;
        if (
          writtenPoolVersion === undefined
            ? version !== this.recentPoolVersion[slot]
            : laterAdjusted
              ? version < writtenPoolVersion
              : version !== writtenPoolVersion
        )
          return false;
      }
      for (const seat of view.seats) this.undoSeat(this.seatIndex(seat));
      if (p >= 0) {
        this.poolHeld[p]! -= view.quantity;
        if (writtenPoolVersion === undefined) this.poolVersion[p]!--;
      }
      this.dropHold(holdId);
      const tally = this.tally(view.customer);
      tally.held -= view.quantity;
      this.untally(view.customer, tally);
      customer = view.customer;
    } else {
      // A one-shot reserve: its seat, sold under its hold id, names the buyer. (Not its ended
      // entry: a small maxEndedHolds may have forgotten that already, within the same batch.)
      const seat = this.recentReserved[slot]!;
      const buyer = seat < 0 || this.seatHold[seat] !== holdId ? null : this.seatBuyer[seat]!;
      if (buyer === null) return false;
      this.undoSeat(seat);
      this.ended.delete(holdId);
      const tally = this.tally(buyer);
      tally.reserved -= 1;
      this.untally(buyer, tally);
      customer = buyer;
    }
    this.memory.forget(customer, key);
    this.recentHold[slot] = undefined;
    return true;
  }

  /** Returns a seat taken by the last change to it to available, at its previous version. */
  private undoSeat(index: number): void {
    this.setSeat(index, AVAILABLE, null, '');
    this.seatVersion[index]! -= 2;
  }

  // ---------------------------------------------------------------------------------------------
  // Read models

  /** Stock per section (this shard's rows of it), per pool, and overall. */
  counts(): ShardCounts {
    const sections: UnitCounts[] = this.sectionIds.map((id, s) => {
      const total = this.sectionTotal[s]!;
      const held = this.sectionHeld[s]!;
      const sold = this.sectionSold[s]!;
      return { id, total, available: total - held - sold, held, sold };
    });
    const pools: UnitCounts[] = this.poolIds.map((id, p) => {
      const total = this.poolCapacity[p]!;
      const held = this.poolHeld[p]!;
      const sold = this.poolSold[p]!;
      return { id, total, available: total - held - sold, held, sold };
    });
    let total = 0;
    let held = 0;
    let sold = 0;
    for (const unit of [...sections, ...pools]) {
      total += unit.total;
      held += unit.held;
      sold += unit.sold;
    }
    return { overall: { total, available: total - held - sold, held, sold }, sections, pools };
  }

  /** States of this shard's seats of `section`, in layout order; undefined when the shard has no rows of it. */
  seatStates(section: string): SeatStateView[] | undefined {
    const s = this.sectionKeys.get(section);
    if (s === undefined) return undefined;
    const views: SeatStateView[] = [];
    const start = this.grid.rowStart[this.sectionFirstRow[s]!]!;
    const endRow = this.sectionEndRow[s]!;
    const end = endRow < this.rowPrefix.length ? this.grid.rowStart[endRow]! : this.seatState.length;
    for (let i = start; i < end; i++)
      views.push({ seat: this.seatIdAt(i), state: STATE_NAMES[this.seatState[i]!]!, version: this.seatVersion[i]! });
    return views;
  }

  /** A live hold (for its owner to read), or undefined. */
  holdView(holdId: string): HoldView | undefined {
    return this.holds.get(holdId);
  }

  stats(): InventoryStats {
    const remembered = this.memory.size;
    return {
      seats: this.seatState.length,
      holds: this.holds.size,
      endedHolds: this.ended.size,
      customers: this.customers.size,
      rememberedResults: remembered.successes,
      rememberedFailures: remembered.failures,
    };
  }

  /**
   * The shard's state in persisted form: what `restore` takes. Equal (up to order) to folding
   * every change this shard emitted into its starting snapshot.
   */
  snapshot(): ShardSnapshot {
    const seats: SeatRecord[] = [];
    for (let i = 0; i < this.seatState.length; i++) {
      const buyer = this.seatBuyer[i]!;
      seats.push({
        id: this.seatIdAt(i),
        state: STATE_NAMES[this.seatState[i]!]!,
        holdId: this.seatHold[i]!,
        version: this.seatVersion[i]!,
        ...(buyer === null ? {} : { buyer }),
      });
    }
    const pools: PoolRecord[] = this.poolIds.map((id, p) => ({
      id,
      capacity: this.poolCapacity[p]!,
      held: this.poolHeld[p]!,
      sold: this.poolSold[p]!,
      version: this.poolVersion[p]!,
    }));
    const reservedByCustomer = [...this.customers]
      .filter(([, t]) => t.reserved > 0)
      .map(([customer, t]) => ({ customer, quantity: t.reserved }));
    const idempotency: IdempotencyRecord[] = [...this.memory.successRecords()].map(({ key, customer, fingerprint, result, at }) => ({
      key,
      customer,
      fingerprint,
      result,
      at,
    }));
    const endedHolds: EndedHoldRecord[] = [...this.ended].map(([holdId, e]) => ({
      holdId,
      customer: e.customer,
      outcome: e.outcome,
      ...(e.reservationId === undefined ? {} : { reservationId: e.reservationId }),
      at: e.at,
    }));
    return { seats, pools, liveHolds: [...this.holds.values()], reservedByCustomer, idempotency, endedHolds };
  }

  // ---------------------------------------------------------------------------------------------
  // Restore

  private load(snapshot: ShardSnapshot, now: number): void {
    const fail = (message: string): never => {
      throw new SnapshotError(`shard ${this.shard}: ${message}`);
    };
    const seen = new Uint8Array(this.seatState.length);
    for (const seat of snapshot.seats) {
      const index = typeof seat.id === 'string' ? this.seatIndex(seat.id) : -1;
      if (index < 0) fail(`seat ${String(seat.id)} is not a seat of this shard`);
      if (seen[index] === 1) fail(`seat ${seat.id} appears twice`);
      seen[index] = 1;
      const state = STATE_CODES.get(seat.state);
      if (state === undefined) fail(`seat ${seat.id} has unknown state ${String(seat.state)}`);
      if (!Number.isSafeInteger(seat.version) || seat.version < 0) fail(`seat ${seat.id} has bad version ${String(seat.version)}`);
      if (state !== AVAILABLE && typeof seat.holdId !== 'string') fail(`seat ${seat.id} is ${seat.state} without a hold id`);
      this.seatState[index] = state!;
      this.seatVersion[index] = seat.version;
      this.seatHold[index] = state === AVAILABLE ? null : seat.holdId;
      // Unknown (an older snapshot, a hold row gone): never named sold, so callers keep asking.
      this.seatBuyer[index] = state === SOLD && isText(seat.buyer) ? seat.buyer : null;
    }
    const poolSeen = new Set<string>();
    for (const pool of snapshot.pools) {
      const p = this.poolKeys.get(pool.id);
      if (p === undefined) fail(`pool ${pool.id} is not a pool of this shard`);
      if (poolSeen.has(pool.id)) fail(`pool ${pool.id} appears twice`);
      poolSeen.add(pool.id);
      if (pool.capacity !== this.poolCapacity[p!])
        fail(`pool ${pool.id} has capacity ${pool.capacity}, the layout says ${this.poolCapacity[p!]}`);
      const counts = [pool.held, pool.sold, pool.version];
      if (counts.some((n) => !Number.isSafeInteger(n) || n < 0) || pool.held + pool.sold > pool.capacity) {
        fail(`pool ${pool.id} has impossible counters held=${pool.held} sold=${pool.sold} version=${pool.version}`);
      }
      this.poolSold[p!] = pool.sold;
      this.poolVersion[p!] = pool.version;
    }
    let heldSeats = 0;
    for (const state of this.seatState) if (state === HELD) heldSeats++;
    let heldByHolds = 0;
    for (const view of snapshot.liveHolds) {
      if (this.holds.has(view.holdId)) fail(`hold ${view.holdId} appears twice`);
      const indexes: number[] = [];
      let pool = -1;
      if (view.pool !== undefined) {
        pool = this.poolKeys.get(view.pool) ?? fail(`hold ${view.holdId} is of pool ${view.pool}, not a pool of this shard`);
        if (view.seats.length !== 0) fail(`pool hold ${view.holdId} names seats`);
        this.poolHeld[pool]! += view.quantity;
      } else {
        if (view.seats.length !== view.quantity) fail(`hold ${view.holdId} has ${view.seats.length} seats but quantity ${view.quantity}`);
        for (const seat of view.seats) {
          const index = this.seatIndex(seat);
          if (index < 0 || this.seatState[index] !== HELD || this.seatHold[index] !== view.holdId) {
            fail(`hold ${view.holdId} names seat ${seat}, which is not held by it`);
          }
          indexes.push(index);
        }
        heldByHolds += indexes.length;
      }
      this.holds.set(view.holdId, view);
      this.scheduleExpiry(view);
      this.tally(view.customer).held += view.quantity;
    }
    if (heldByHolds !== heldSeats) fail(`${heldSeats} seats are held but live holds name ${heldByHolds}`);
    for (const pool of snapshot.pools) {
      const p = this.poolKeys.get(pool.id)!;
      if (this.poolHeld[p] !== pool.held) fail(`pool ${pool.id} says ${pool.held} held but its live holds hold ${this.poolHeld[p]}`);
    }
    for (let p = 0; p < this.poolIds.length; p++) {
      if (!poolSeen.has(this.poolIds[p]!) && this.poolHeld[p] !== 0) fail(`pool ${this.poolIds[p]} has live holds but no counters`);
    }
    for (const { customer, quantity: reserved } of snapshot.reservedByCustomer) {
      if (!Number.isSafeInteger(reserved) || reserved < 0) fail(`customer ${customer} has bad reservation count ${reserved}`);
      if (reserved > 0) this.tally(customer).reserved += reserved;
    }
    const ttl = this.rules.idempotencyTtlMs;
    const records = [...snapshot.idempotency].filter((r) => r.at + ttl > now).sort((a, b) => a.at - b.at);
    for (const record of records) this.memory.rememberSuccess(record);
    const ended = [...(snapshot.endedHolds ?? [])].filter((e) => e.at + ttl > now).sort((a, b) => a.at - b.at);
    for (const e of ended) {
      if (this.holds.has(e.holdId)) fail(`hold ${e.holdId} is both live and ended`);
      this.rememberEnded(e.holdId, { customer: e.customer, outcome: e.outcome, reservationId: e.reservationId, at: e.at });
    }
    this.recount();
  }

  /** Recomputes row and section counters from the seat states. */
  private recount(): void {
    const grid = this.grid;
    this.sectionHeld.fill(0);
    this.sectionSold.fill(0);
    for (let r = 0; r < this.rowPrefix.length; r++) {
      const start = grid.rowStart[r]!;
      const end = start + grid.rowLength[r]!;
      const s = this.rowSection[r]!;
      let free = 0;
      for (let i = start; i < end; i++) {
        const state = this.seatState[i];
        if (state === AVAILABLE) free++;
        else if (state === HELD) this.sectionHeld[s]!++;
        else this.sectionSold[s]!++;
      }
      grid.rowFree[r] = free;
      grid.rowMaxRun[r] = -1;
      grid.rowFirstFree[r] = start;
    }
  }
}
