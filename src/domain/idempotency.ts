/**
 * What a shard remembers about idempotency keys. Keys are scoped per customer (two customers may
 * both send key "1"); a key maps to the fingerprint of the command it first came with and the
 * result it got. Successes are persisted by the engine with the commit and rebuilt on restore;
 * failures live in memory only (a loser never touches the database) and are bounded separately.
 */
import type { CustomerId, ShardCommand, ShardResult } from './commands.js';

/** A remembered first answer. */
export interface RememberedResult {
  readonly customer: CustomerId;
  readonly fingerprint: string;
  readonly result: ShardResult;
  /** When it was decided (epoch ms); it is forgotten at `at + idempotencyTtlMs`. */
  readonly at: number;
}

/** A remembered success, as persisted (the `idempotency` change has exactly this shape plus `type`). */
export interface IdempotencyRecord extends RememberedResult {
  readonly key: string;
}

/**
 * Map key of (customer, key). Keys never contain NUL (the shard refuses them: HTTP header values
 * cannot carry one anyway), so the last NUL separates the two and no choice of strings collides.
 */
export function idempotencyScope(customer: CustomerId, key: string): string {
  return customer + '\u0000' + key;
}

/**
 * The part of a command that must match for a repeated key to be a replay: everything but the
 * key and the customer (already in the scope). A hold's fingerprint is its seat ids joined by ','
 * (for one seat, the id itself: no allocation on the hot path); every other fingerprint starts
 * with the command type and a space. Valid seat ids contain neither ',' nor ' ', so no two
 * different valid commands share a fingerprint.
 */
export function fingerprintOf(command: ShardCommand): string {
  switch (command.type) {
    case 'hold':
      return command.seats.length === 1 ? command.seats[0]! : command.seats.join(',');
    case 'hold-best':
      return `hold-best ${command.section} ${command.quantity}${command.strictOrphans === true ? ' strict' : ''}`;
    case 'hold-pool':
      return `hold-pool ${command.pool} ${command.quantity}`;
    case 'confirm':
      return `confirm ${command.holdId}`;
    case 'release':
      return `release ${command.holdId}`;
    case 'reserve':
      return `reserve ${command.seat}`;
  }
}

/**
 * Bounded, time-limited memory of first answers.
 *
 * Indexed by the key alone: keys are practically unique across customers (clients send UUIDs), so
 * the hot path hashes the command's own key string and builds no composite key. The rare same key
 * of a second customer goes to a side map indexed by `idempotencyScope(customer, key)`. Failures
 * are also queued in a ring of `maxFailures` slots, so the oldest is evicted when there are too
 * many, without touching successes.
 */
export class IdempotencyMemory {
  private readonly byKey = new Map<string, RememberedResult>();
  private readonly shared = new Map<string, RememberedResult>();
  private successes = 0;
  private readonly ringKey: (string | undefined)[];
  private readonly ringCustomer: (string | undefined)[];
  private readonly ringAt: Float64Array;
  private ringHead = 0;
  private ringCount = 0;
  /** The key of the last lookup that found `byKey` free for it: the usual next call stores there without probing again. */
  private freeKey: string | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly maxSuccesses: number,
    private readonly maxFailures: number,
  ) {
    this.ringKey = new Array<string | undefined>(maxFailures);
    this.ringCustomer = new Array<string | undefined>(maxFailures);
    this.ringAt = new Float64Array(maxFailures);
  }

  /** The first answer to (customer, key), unless forgotten or older than the TTL. */
  lookup(customer: CustomerId, key: string, now: number): RememberedResult | undefined {
    let entry = this.byKey.get(key);
    this.freeKey = entry === undefined ? key : undefined;
    if (entry === undefined || entry.customer !== customer) {
      if (this.shared.size === 0) return undefined;
      entry = this.shared.get(idempotencyScope(customer, key));
      if (entry === undefined) return undefined;
    }
    if (entry.at + this.ttlMs > now) return entry;
    this.remove(customer, key);
    return undefined;
  }

  rememberSuccess(record: IdempotencyRecord): void {
    this.put(record.customer, record.key, record);
    this.successes++;
    if (this.successes > this.maxSuccesses) this.evictOldestSuccesses();
  }

  rememberFailure(key: string, remembered: RememberedResult): void {
    if (this.maxFailures === 0) return;
    if (this.ringCount === this.maxFailures) {
      // The ring is full: free its oldest slot, evicting that failure if it is still remembered as it was.
      const head = this.ringHead;
      const oldKey = this.ringKey[head]!;
      const oldCustomer = this.ringCustomer[head]!;
      const entry = this.find(oldCustomer, oldKey);
      if (entry !== undefined && !entry.result.ok && entry.at === this.ringAt[head]) this.remove(oldCustomer, oldKey);
      this.ringKey[head] = undefined;
      this.ringCustomer[head] = undefined;
      this.ringHead = (head + 1) % this.maxFailures;
      this.ringCount--;
    }
    this.put(remembered.customer, key, remembered);
    const slot = (this.ringHead + this.ringCount) % this.maxFailures;
    this.ringKey[slot] = key;
    this.ringCustomer[slot] = remembered.customer;
    this.ringAt[slot] = remembered.at;
    this.ringCount++;
  }

  /** Forgets a success (its decision was aborted, so a retry must be decided afresh). */
  forget(customer: CustomerId, key: string): void {
    if (this.find(customer, key)?.result.ok === true) this.remove(customer, key);
  }

  /** Forgets a refusal, so the key's next command is decided afresh (and remembered at the end, in decision order). */
  forgetRefusal(customer: CustomerId, key: string): void {
    if (this.find(customer, key)?.result.ok === false) this.remove(customer, key);
  }

  /** Drops entries past their TTL. The maps keep insertion order, which is decision-time order. */
  prune(now: number): void {
    for (const map of [this.byKey, this.shared]) {
      for (const [mapKey, entry] of map) {
        if (entry.at + this.ttlMs > now) break;
        this.freeKey = undefined;
        map.delete(mapKey);
        if (entry.result.ok) this.successes--;
      }
    }
  }

  /** Remembered successes, oldest first (what a snapshot persists). */
  *successRecords(): IterableIterator<IdempotencyRecord> {
    for (const map of [this.byKey, this.shared]) {
      for (const entry of map.values()) if (entry.result.ok) yield entry as IdempotencyRecord;
    }
  }

  get size(): { successes: number; failures: number } {
    return { successes: this.successes, failures: this.byKey.size + this.shared.size - this.successes };
  }

  private find(customer: CustomerId, key: string): RememberedResult | undefined {
    const entry = this.byKey.get(key);
    if (entry !== undefined && entry.customer === customer) return entry;
    return this.shared.size === 0 ? undefined : this.shared.get(idempotencyScope(customer, key));
  }

  private put(customer: CustomerId, key: string, entry: RememberedResult): void {
    if (key === this.freeKey) {
      // Nothing was stored under `key` between the lookup and now (the shard decides one command at a time).
      this.freeKey = undefined;
      this.byKey.set(key, entry);
      return;
    }
    const existing = this.byKey.get(key);
    if (existing === undefined || existing.customer === customer) {
      if (existing?.result.ok === true) this.successes--;
      this.byKey.set(key, entry);
      return;
    }
    const scope = idempotencyScope(customer, key);
    if (this.shared.get(scope)?.result.ok === true) this.successes--;
    this.shared.set(scope, entry);
  }

  private remove(customer: CustomerId, key: string): void {
    this.freeKey = undefined;
    const entry = this.byKey.get(key);
    let removed: RememberedResult | undefined;
    if (entry !== undefined && entry.customer === customer) {
      this.byKey.delete(key);
      removed = entry;
    } else if (this.shared.size > 0) {
      const scope = idempotencyScope(customer, key);
      removed = this.shared.get(scope);
      this.shared.delete(scope);
    }
    if (removed?.result.ok === true) this.successes--;
  }

  /**
   * Over the cap: forgets the oldest successes down to about 15/16 of it (one at a time below 16),
   * as `evictOldest` does and for its reason — deleting the oldest entry on every insert makes each
   * walk from the start of the map longer (about 1 ms per success at the default cap once full, and
   * a restore of more records than the cap quadratic).
   */
  private evictOldestSuccesses(): void {
    let excess = this.successes - this.maxSuccesses + Math.floor(this.maxSuccesses / 16);
    // The oldest of both maps (each in decision order): a second customer's entries under a reused
    // key are not spared for being in the side map, nor is a success just stored forgotten for them.
    const own = this.byKey.entries();
    const side = this.shared.entries();
    let a = nextSuccess(own);
    let b = nextSuccess(side);
    while (excess > 0 && (a !== undefined || b !== undefined)) {
      if (b === undefined || (a !== undefined && a[1].at <= b[1].at)) {
        this.byKey.delete(a![0]);
        a = nextSuccess(own);
      } else {
        this.shared.delete(b[0]);
        b = nextSuccess(side);
      }
      this.successes--;
      excess--;
    }
  }
}

/** The next success of a map's entries, skipping failures. */
function nextSuccess(entries: IterableIterator<[string, RememberedResult]>): [string, RememberedResult] | undefined {
  for (const entry of entries) if (entry[1].result.ok) return entry;
  return undefined;
}
