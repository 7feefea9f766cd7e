/**
 * A tiny, obviously-correct model of one shard, written from the rules (not from the optimized
 * inventory): plain maps, naive scans. Property tests run the same commands through both and
 * compare every answer.
 *
 * Its memory is unbounded. A shard's is bounded (`maxRememberedResults`, `maxRememberedFailures`,
 * `maxEndedHolds`) and forgets entries beyond the bound: `reconcile` accepts that the shard forgot
 * an entry only when it could have (see `mayHaveForgotten`), and then forgets it too — so a
 * forgotten key is decided afresh by both. A restore brings back what the store has (every
 * success and ended hold), as the shard's does.
 */
import type { CustomerId, ShardCommand, ShardResult } from '../../../../src/domain/index.js';
import type { Layout, ShardMap, ShardSettings } from '../../../../src/domain/index.js';

type State = 'available' | 'held' | 'sold';

interface ModelHold {
  readonly holdId: string;
  readonly customer: CustomerId;
  readonly seats: readonly string[];
  readonly pool: string | undefined;
  readonly quantity: number;
  readonly expiresAt: number;
}

interface ModelMemory {
  readonly fingerprint: string;
  readonly result: Projection;
  readonly at: number;
  /** The how-manieth success or failure remembered. */
  readonly seq: number;
}

interface ModelEnded {
  readonly customer: CustomerId;
  readonly outcome: 'released' | 'expired' | 'confirmed';
  readonly reservationId: string | undefined;
  readonly at: number;
}

/** The parts of a result the model predicts (messages are prose, not compared). */
export type Projection = Record<string, unknown>;

function isSuccess(result: Projection): boolean {
  return result['type'] === 'held' || result['type'] === 'confirmed' || result['type'] === 'released';
}

export function project(result: ShardResult): Projection {
  switch (result.type) {
    case 'held':
      return {
        type: result.type,
        holdId: result.hold.holdId,
        customer: result.hold.customer,
        seats: result.hold.seats,
        pool: result.hold.pool,
        quantity: result.hold.quantity,
        expiresAt: result.hold.expiresAt,
      };
    case 'confirmed':
      return {
        type: result.type,
        holdId: result.reservation.holdId,
        reservationId: result.reservation.reservationId,
        seats: result.reservation.seats,
        pool: result.reservation.pool,
        quantity: result.reservation.quantity,
      };
    case 'released':
      return { type: result.type, holdId: result.holdId };
    case 'unavailable':
      return { type: result.type, seats: result.seats, sold: result.sold ?? [], soldTo: result.soldTo ?? [] };
    case 'limit-exceeded':
      return { type: result.type, limit: result.limit, current: result.current, requested: result.requested };
    case 'hold-not-found':
    case 'hold-expired':
      return { type: result.type, holdId: result.holdId };
    case 'hold-confirmed':
      return { type: result.type, holdId: result.holdId, reservationId: result.reservationId };
    case 'invalid':
      return { type: result.type, field: result.field };
    case 'idempotency-mismatch':
    case 'not-serving':
      return { type: result.type };
  }
}

export class ReferenceModel {
  /** `buyer`: who bought a sold seat. */
  readonly seats = new Map<string, { state: State; holdId: string | null; buyer?: string }>();
  /** This shard's rows, in layout order. */
  readonly rows: { section: string; seats: string[] }[] = [];
  readonly pools = new Map<string, { capacity: number; held: number; sold: number }>();
  readonly holds = new Map<string, ModelHold>();
  readonly ended = new Map<string, ModelEnded>();
  readonly reserved = new Map<CustomerId, number>();
  /** The answer per (customer, key) an unbounded memory would give. */
  private memory = new Map<string, ModelMemory>();
  /** The latest success per (customer, key): what the store keeps, and a restore brings back. */
  private readonly persisted = new Map<string, ModelMemory>();
  /** When each failure and ended hold was remembered (see `mayHaveForgotten`). */
  private readonly rememberedAt = { failure: [] as number[], ended: [] as number[] };
  private seq = 0;
  /** The last `seq` at which the successes remembered were more than the bound (an upper bound of the shard's count: see `mayHaveForgotten`). */
  private successesOverflowedAt = -1;
  /** Ended holds the shard showed it had forgotten (until a restore). */
  private readonly forgottenEnded = new Set<string>();
  private holdCount = 0;
  private reservationCount = 0;

  constructor(
    private readonly layout: Layout,
    private readonly map: ShardMap,
    private readonly shard: number,
    private settings: ShardSettings,
  ) {
    for (const section of layout.sections) {
      for (const row of section.rows) {
        if (map.shardOfSeat(`${section.id}-${row.id}-1`) !== shard) continue;
        const ids = Array.from({ length: row.seats }, (_, i) => `${section.id}-${row.id}-${i + 1}`);
        this.rows.push({ section: section.id, seats: ids });
        for (const id of ids) this.seats.set(id, { state: 'available', holdId: null });
      }
    }
    for (const pool of layout.pools) {
      if (map.shardOfPool(pool.id) === shard) this.pools.set(pool.id, { capacity: pool.capacity, held: 0, sold: 0 });
    }
  }

  /** New rules from now on (ShardInventory.applyRules). */
  applyRules(settings: ShardSettings): void {
    this.settings = settings;
  }

  /** A restored shard remembers what the store has: the latest success per key, every ended hold (up to its bounds). */
  restored(): void {
    this.memory = new Map(this.persisted);
    this.forgottenEnded.clear();
    if (this.persisted.size > this.settings.maxRememberedResults) this.successesOverflowedAt = ++this.seq;
  }

  /**
   * Whether a shard may have forgotten a failure or an ended hold remembered at `at`: it forgets
   * the oldest first, only beyond its bound, so at least that many others were remembered since
   * (or at the same time: a restore orders by time alone).
   */
  private mayHaveForgotten(kind: 'failure' | 'ended', at: number): boolean {
    const bound = kind === 'failure' ? this.settings.maxRememberedFailures : this.settings.maxEndedHolds;
    return this.rememberedAt[kind].filter((t) => t >= at).length - 1 >= bound;
  }

  /**
   * Whether a shard may have forgotten a success: only once it held more than its bound since the
   * success was remembered. (Not necessarily its oldest: successes under a key another customer
   * also used are kept apart, and the others are evicted first.) This memory holds every success
   * the shard's may hold, so its count bounds the shard's.
   */
  private mayHaveForgottenSuccess(entry: ModelMemory): boolean {
    return this.successesOverflowedAt >= entry.seq;
  }

  /**
   * Takes in what the shard's answer to `command` shows it forgot, before `decide`: a key it
   * remembered (it decided afresh instead of replaying), or an ended hold (it answered
   * hold-not-found). Throws when the shard may not have forgotten it yet. Returns what was forgotten.
   */
  reconcile(
    command: ShardCommand,
    now: number,
    decision: { readonly result: ShardResult; readonly replayed?: true },
  ): { key: 'success' | 'failure' | undefined; ended: boolean } {
    const forgot: { key: 'success' | 'failure' | undefined; ended: boolean } = { key: undefined, ended: false };
    if (decision.result.type === 'invalid' || decision.replayed === true) return forgot;
    const scope = `${command.customer}\u0000${command.key}`;
    const prior = this.memory.get(scope);
    if (
      prior !== undefined &&
      prior.at + this.settings.idempotencyTtlMs > now &&
      !(command.redecideRefusal === true && !isSuccess(prior.result)) &&
      decision.result.type !== 'idempotency-mismatch'
    ) {
      const kind = isSuccess(prior.result) ? 'success' : 'failure';
      if (kind === 'success' ? !this.mayHaveForgottenSuccess(prior) : !this.mayHaveForgotten(kind, prior.at)) {
        throw new Error(`the shard forgot its ${kind} for ${JSON.stringify(scope)} (remembered at ${prior.at}) within its bound`);
      }
      this.memory.delete(scope);
      forgot.key = kind;
    }
    if ((command.type === 'confirm' || command.type === 'release') && decision.result.type === 'hold-not-found') {
      const ended = this.holds.has(command.holdId) ? undefined : this.ended.get(command.holdId);
      if (
        ended !== undefined &&
        ended.customer === command.customer &&
        ended.at + this.settings.idempotencyTtlMs > now &&
        !this.forgottenEnded.has(command.holdId)
      ) {
        if (!this.mayHaveForgotten('ended', ended.at)) {
          throw new Error(`the shard forgot ended hold ${command.holdId} (ended at ${ended.at}) within its bound`);
        }
        this.forgottenEnded.add(command.holdId);
        forgot.ended = true;
      }
    }
    return forgot;
  }

  /** The latest success remembered for (customer, key), for `undo`. */
  persistedEntry(customer: CustomerId, key: string): ModelMemory | undefined {
    return this.persisted.get(`${customer}\u0000${key}`);
  }

  /** Whether `abort` can undo the creation of `holdId` (by `command`): its hold is live as created, or it was a one-shot reserve. */
  canAbort(command: ShardCommand, holdId: string): boolean {
    return this.holds.has(holdId) || (command.type === 'reserve' && this.seats.get(command.seat)?.holdId === holdId);
  }

  /**
   * Undoes the creation of `holdId` by `command` (ShardInventory.abort): its seats or places
   * return, the success remembered for its key is forgotten and the store keeps the success it had
   * before (`persistedBefore`).
   */
  undo(command: ShardCommand, holdId: string, persistedBefore: ModelMemory | undefined): void {
    const hold = this.holds.get(holdId);
    if (hold !== undefined) {
      this.holds.delete(holdId);
      for (const seat of hold.seats) this.seats.set(seat, { state: 'available', holdId: null });
      if (hold.pool !== undefined) this.pools.get(hold.pool)!.held -= hold.quantity;
    } else if (command.type === 'reserve') {
      this.seats.set(command.seat, { state: 'available', holdId: null });
      const reserved = this.reserved.get(command.customer)! - 1;
      if (reserved === 0) this.reserved.delete(command.customer);
      else this.reserved.set(command.customer, reserved);
      this.ended.delete(holdId);
    } else {
      throw new Error(`nothing to undo for ${holdId}`);
    }
    const scope = `${command.customer}\u0000${command.key}`;
    // The success is forgotten (a refusal decided under the key since, its TTL over, stays).
    if (isSuccess(this.memory.get(scope)?.result ?? {})) this.memory.delete(scope);
    if (persistedBefore === undefined) this.persisted.delete(scope);
    else this.persisted.set(scope, persistedBefore);
  }

  private usage(customer: CustomerId): number {
    let used = this.reserved.get(customer) ?? 0;
    for (const hold of this.holds.values()) if (hold.customer === customer) used += hold.quantity;
    return used;
  }

  decide(command: ShardCommand, now: number): Projection {
    const problem = this.validate(command);
    if (problem !== undefined) return problem;
    const scope = `${command.customer}\u0000${command.key}`;
    const fingerprint = JSON.stringify({
      ...command,
      key: undefined,
      customer: undefined,
      redecideRefusal: undefined,
      strictOrphans: 'strictOrphans' in command ? command.strictOrphans === true : undefined,
    });
    const prior = this.memory.get(scope);
    // Asked again after a refusal: decided afresh (a success is always replayed).
    const redecide = command.redecideRefusal === true && prior !== undefined && !isSuccess(prior.result);
    if (prior !== undefined && prior.at + this.settings.idempotencyTtlMs > now && !redecide) {
      return prior.fingerprint === fingerprint ? prior.result : { type: 'idempotency-mismatch' };
    }
    const result = this.apply(command, now);
    const entry = { fingerprint, result, at: now, seq: ++this.seq };
    this.memory.set(scope, entry);
    if (isSuccess(result)) {
      this.persisted.set(scope, entry);
      let successes = 0;
      for (const remembered of this.memory.values()) if (isSuccess(remembered.result)) successes++;
      if (successes > this.settings.maxRememberedResults) this.successesOverflowedAt = entry.seq;
    } else {
      this.rememberedAt.failure.push(now);
    }
    return result;
  }

  private validate(command: ShardCommand): Projection | undefined {
    const invalid = (field: string): Projection => ({ type: 'invalid', field });
    switch (command.type) {
      case 'hold': {
        if (command.seats.length === 0) return invalid('seats');
        const tooMany = this.tooMany('seats', command.seats.length);
        if (tooMany !== undefined) return tooMany;
        // More seats than the limit: refused as the limit exceeded, whatever they name.
        if (command.seats.length > this.settings.customerLimit) return undefined;
        const seen = new Set<string>();
        for (let i = 0; i < command.seats.length; i++) {
          const seat = command.seats[i]!;
          if (!this.seats.has(seat) || seen.has(seat)) return invalid(`seats[${i}]`);
          seen.add(seat);
        }
        return undefined;
      }
      case 'reserve':
        return this.seats.has(command.seat) ? undefined : invalid('seat');
      case 'hold-best': {
        if (!Number.isInteger(command.quantity) || command.quantity < 1) return invalid('quantity');
        const tooMany = this.tooMany('quantity', command.quantity);
        if (tooMany !== undefined) return tooMany;
        if (!this.rows.some((row) => row.section === command.section)) return invalid('section');
        const section = this.layout.sections.find((s) => s.id === command.section)!;
        if (command.quantity > Math.max(...section.rows.map((r) => r.seats))) return invalid('quantity');
        return undefined;
      }
      case 'hold-pool': {
        if (!Number.isInteger(command.quantity) || command.quantity < 1) return invalid('quantity');
        const tooMany = this.tooMany('quantity', command.quantity);
        if (tooMany !== undefined) return tooMany;
        return this.pools.has(command.pool) ? undefined : invalid('pool');
      }
      case 'confirm':
      case 'release':
        return undefined;
    }
  }

  /** More than one command may take is invalid, unless it is over the customer limit too (decided, as the limit exceeded). */
  private tooMany(field: string, requested: number): Projection | undefined {
    if (requested <= this.settings.maxSeatsPerRequest || requested > this.settings.customerLimit) return undefined;
    return { type: 'invalid', field };
  }

  private limit(customer: CustomerId, requested: number): Projection | undefined {
    const current = this.usage(customer);
    if (current + requested <= this.settings.customerLimit) return undefined;
    return { type: 'limit-exceeded', limit: this.settings.customerLimit, current, requested };
  }

  private newHold(customer: CustomerId, seats: readonly string[], pool: string | undefined, quantity: number, now: number): Projection {
    const holdId = `hold-${++this.holdCount}`;
    const expiresAt = now + this.settings.holdTtlMs;
    this.holds.set(holdId, { holdId, customer, seats, pool, quantity, expiresAt });
    for (const seat of seats) this.seats.set(seat, { state: 'held', holdId });
    if (pool !== undefined) this.pools.get(pool)!.held += quantity;
    return { type: 'held', holdId, customer, seats, pool, quantity, expiresAt };
  }

  private apply(command: ShardCommand, now: number): Projection {
    const customer = command.customer;
    switch (command.type) {
      case 'hold': {
        const exceeded = this.limit(customer, command.seats.length);
        if (exceeded) return exceeded;
        const taken = command.seats.filter((s) => this.seats.get(s)!.state !== 'available');
        const sold = taken.filter((s) => this.seats.get(s)!.state === 'sold');
        const soldTo = sold.map((s) => this.seats.get(s)!.buyer!);
        if (taken.length > 0) return { type: 'unavailable', seats: taken, sold, soldTo };
        return this.newHold(customer, [...command.seats], undefined, command.seats.length, now);
      }
      case 'hold-best': {
        const exceeded = this.limit(customer, command.quantity);
        if (exceeded) return exceeded;
        const seats = this.bestPlacement(command.section, command.quantity, command.strictOrphans === true);
        if (seats === undefined) return { type: 'unavailable', seats: [], sold: [], soldTo: [] };
        return this.newHold(customer, seats, undefined, command.quantity, now);
      }
      case 'hold-pool': {
        const exceeded = this.limit(customer, command.quantity);
        if (exceeded) return exceeded;
        const pool = this.pools.get(command.pool)!;
        if (pool.capacity - pool.held - pool.sold < command.quantity) return { type: 'unavailable', seats: [], sold: [], soldTo: [] };
        return this.newHold(customer, [], command.pool, command.quantity, now);
      }
      case 'reserve': {
        const exceeded = this.limit(customer, 1);
        if (exceeded) return exceeded;
        const { state, buyer } = this.seats.get(command.seat)!;
        if (state !== 'available') {
          const sold = state === 'sold';
          return { type: 'unavailable', seats: [command.seat], sold: sold ? [command.seat] : [], soldTo: sold ? [buyer!] : [] };
        }
        const holdId = `hold-${++this.holdCount}`;
        const reservationId = `res-${++this.reservationCount}`;
        this.seats.set(command.seat, { state: 'sold', holdId, buyer: customer });
        this.reserved.set(customer, (this.reserved.get(customer) ?? 0) + 1);
        this.endHoldRecord(holdId, { customer, outcome: 'confirmed', reservationId, at: now });
        return { type: 'confirmed', holdId, reservationId, seats: [command.seat], pool: undefined, quantity: 1 };
      }
      case 'confirm':
      case 'release': {
        const { holdId } = command;
        const hold = this.holds.get(holdId);
        if (hold === undefined || hold.customer !== customer) {
          const ended = hold === undefined && !this.forgottenEnded.has(holdId) ? this.ended.get(holdId) : undefined;
          if (ended !== undefined && ended.customer === customer && ended.at + this.settings.idempotencyTtlMs > now) {
            return ended.outcome === 'confirmed'
              ? { type: 'hold-confirmed', holdId, reservationId: ended.reservationId }
              : { type: 'hold-expired', holdId };
          }
          return { type: 'hold-not-found', holdId };
        }
        if (hold.expiresAt <= now) return { type: 'hold-expired', holdId };
        if (command.type === 'release') {
          this.end(hold, 'released', now);
          return { type: 'released', holdId };
        }
        this.holds.delete(holdId);
        for (const seat of hold.seats) this.seats.set(seat, { state: 'sold', holdId, buyer: customer });
        if (hold.pool !== undefined) {
          const pool = this.pools.get(hold.pool)!;
          pool.held -= hold.quantity;
          pool.sold += hold.quantity;
        }
        const reservationId = `res-${++this.reservationCount}`;
        this.reserved.set(customer, (this.reserved.get(customer) ?? 0) + hold.quantity);
        this.endHoldRecord(holdId, { customer, outcome: 'confirmed', reservationId, at: now });
        return { type: 'confirmed', holdId, reservationId, seats: hold.seats, pool: hold.pool, quantity: hold.quantity };
      }
    }
  }

  private end(hold: ModelHold, outcome: 'released' | 'expired', now: number): void {
    this.holds.delete(hold.holdId);
    for (const seat of hold.seats) this.seats.set(seat, { state: 'available', holdId: null });
    if (hold.pool !== undefined) this.pools.get(hold.pool)!.held -= hold.quantity;
    this.endHoldRecord(hold.holdId, { customer: hold.customer, outcome, reservationId: undefined, at: now });
  }

  private endHoldRecord(holdId: string, ended: ModelEnded): void {
    this.ended.set(holdId, ended);
    this.rememberedAt.ended.push(ended.at);
  }

  /** Holds due at `now`, ended; returns their ids and seats. */
  expireDue(now: number): { holdIds: string[]; seats: string[] } {
    const due = [...this.holds.values()].filter((h) => h.expiresAt <= now);
    for (const hold of due) this.end(hold, 'expired', now);
    return { holdIds: due.map((h) => h.holdId).sort(), seats: due.flatMap((h) => h.seats).sort() };
  }

  /** Whether taking `seats` (adjacent, in one row) leaves a lone available seat beside them. */
  leavesOrphan(row: readonly string[], start: number, quantity: number): boolean {
    const free = (i: number): boolean => i >= 0 && i < row.length && this.seats.get(row[i]!)!.state === 'available';
    const lone = (i: number, away: number): boolean => free(i) && !free(i + away);
    return lone(start - 1, -1) || lone(start + quantity, +1);
  }

  /** All placements of `quantity` adjacent free seats in the section's rows, best row first, leftmost first. */
  placements(section: string, quantity: number): { row: string[]; start: number; orphan: boolean }[] {
    const found: { row: string[]; start: number; orphan: boolean }[] = [];
    for (const row of this.rows) {
      if (row.section !== section) continue;
      for (let start = 0; start + quantity <= row.seats.length; start++) {
        if (row.seats.slice(start, start + quantity).every((s) => this.seats.get(s)!.state === 'available')) {
          found.push({ row: row.seats, start, orphan: this.leavesOrphan(row.seats, start, quantity) });
        }
      }
    }
    return found;
  }

  private bestPlacement(section: string, quantity: number, strict: boolean): string[] | undefined {
    const all = this.placements(section, quantity);
    const chosen = all.find((p) => !p.orphan) ?? (strict ? undefined : all[0]);
    return chosen?.row.slice(chosen.start, chosen.start + quantity);
  }
}
