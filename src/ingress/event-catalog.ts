/**
 * The events the ingress routes for: settings from Postgres and the seat → shard map of each,
 * cached. The map is a pure function of (layout, shard count), so it is rebuilt only when the
 * layout hash changes; settings (rate, window, status) are re-read after a short TTL.
 *
 * An entry past half its TTL is re-read in the background by the request that finds it, so under
 * steady traffic the entry is replaced before it expires and no request waits for the re-read — a
 * slow Postgres (a checkpoint, a busy disk) no longer stalls every request for the event once per
 * TTL. Nothing older than the TTL is ever served while Postgres answers: a request waits for the
 * read only when the entry has expired (no request in the second half of its life). While
 * Postgres fails, the last known settings are served without waiting, and it is asked again once
 * per half TTL. A read that does not answer within `readWaitMs` counts as failed for those who
 * wait: they get the last known settings, or a 503 when there are none — a Postgres that stops
 * answering does not hold every request for the pool's query timeout.
 */
import { translatePgError } from '../adapters/postgres/errors.js';
import { withDeadline } from '../deadline.js';
import { saleState, type StoredEvent } from '../adapters/postgres/inventory-store.js';
import { validateLayout } from '../domain/layout.js';
import { shardMap, type ShardMap } from '../domain/shard-map.js';
import { DependencyError, SentinelError } from '../errors.js';
import { evictOldest } from '../evict.js';
import { admissionRateOf, type AdmissionRate } from './admission.js';

/** The event's sale state (from the store, where the engine reads it too). */
export { saleState };

/** An event as the ingress routes it. */
export interface RoutableEvent {
  readonly event: StoredEvent;
  readonly map: ShardMap;
  readonly admission: AdmissionRate;
}

/** Where events come from (the InventoryStore in production). */
export interface EventSource {
  getEvent(eventId: string): Promise<StoredEvent | undefined>;
}

interface Entry {
  readonly value: RoutableEvent;
  readonly expiresAt: number;
  /** From when a request re-reads it in the background (found events only). */
  readonly refreshAt: number;
}

/** How long event settings are trusted before they are re-read (ms). */
export const EVENT_CACHE_TTL_MS = 2000;
/** How long "no such event" is remembered, so bogus ids cannot hammer Postgres (ms). */
export const MISSING_EVENT_CACHE_TTL_MS = 1000;
/** Most events cached at once, and most ids of no event remembered. */
export const MAX_CACHED_EVENTS = 10_000;
/** How long a request waits for a read of its event before it is treated as failed (ms; as Redis commands, ADR 0004). */
export const EVENT_READ_WAIT_MS = 2000;

/** Caches events with single-flight loads: a thousand concurrent requests cause one query. */
export class EventCatalog {
  private readonly entries = new Map<string, Entry>();
  /**
   * Ids of no event, apart: anyone with a token can make up thousands, and they must neither grow
   * memory without bound nor push a sale's entry out of `entries` (whose ids are events' only).
   */
  private readonly missing = new Map<string, number>();
  private readonly loading = new Map<string, Promise<RoutableEvent | undefined>>();
  private readonly maps = new Map<string, ShardMap>();
  /** Events whose last read failed: no read in the background before this time (epoch ms). */
  private readonly retryAt = new Map<string, number>();

  constructor(
    private readonly source: EventSource,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = EVENT_CACHE_TTL_MS,
    private readonly readWaitMs = EVENT_READ_WAIT_MS,
  ) {}

  /** The event, or undefined when there is no such event. */
  async get(eventId: string): Promise<RoutableEvent | undefined> {
    const now = this.now();
    const missingUntil = this.missing.get(eventId);
    if (missingUntil !== undefined) {
      if (missingUntil > now) return undefined;
      this.missing.delete(eventId);
    }
    const entry = this.entries.get(eventId);
    if (entry !== undefined && entry.expiresAt > now) {
      if (entry.refreshAt <= now) this.readInBackground(eventId, now);
      return entry.value;
    }
    if (entry !== undefined && this.retryAt.has(eventId)) {
      // Postgres failed the last read: the last known settings are served without waiting (as a
      // failed read would end in anyway), and Postgres is asked again once per half TTL.
      this.readInBackground(eventId, now);
      return entry.value;
    }
    // An expired entry keeps serving while its read is in flight only if the read fails (or hangs).
    try {
      return await this.waitFor(eventId, this.loadOnce(eventId));
    } catch (error) {
      if (entry !== undefined) return entry.value;
      throw error;
    }
  }

  /**
   * One read of the event at a time, whoever asks. A failed read is remembered: no read in the
   * background comes sooner than half a TTL after it (a failing Postgres is not asked at the rate
   * of requests), and an expired entry is served without waiting until a read succeeds.
   */
  private loadOnce(eventId: string): Promise<RoutableEvent | undefined> {
    let pending = this.loading.get(eventId);
    if (pending === undefined) {
      pending = this.load(eventId).then(
        (value) => {
          this.retryAt.delete(eventId);
          return value;
        },
        (error: unknown) => {
          this.retryAt.set(eventId, this.now() + this.ttlMs / 2);
          evictOldest(this.retryAt, 10_000);
          throw error;
        },
      );
      pending = pending.finally(() => this.loading.delete(eventId));
      this.loading.set(eventId, pending);
    }
    return pending;
  }

  /**
   * The read, or a DependencyError once `readWaitMs` has passed without an answer. The read goes on;
   * until it ends, the event is treated as failed (the last settings are served without waiting).
   */
  private waitFor(eventId: string, read: Promise<RoutableEvent | undefined>): Promise<RoutableEvent | undefined> {
    return withDeadline(read, this.readWaitMs, () => {
      if (this.loading.has(eventId)) this.retryAt.set(eventId, this.now() + this.ttlMs / 2);
      return new DependencyError('postgres', `read event ${eventId}: no answer within ${this.readWaitMs} ms`);
    });
  }

  /** Starts a read nobody waits for, unless one is in flight or the last failed less than half a TTL ago. */
  private readInBackground(eventId: string, now: number): void {
    if (this.loading.has(eventId) || (this.retryAt.get(eventId) ?? 0) > now) return;
    this.loadOnce(eventId).catch(() => undefined); // remembered by loadOnce; the entry serves on
  }

  private async load(eventId: string): Promise<RoutableEvent | undefined> {
    let event: StoredEvent | undefined;
    try {
      event = await this.source.getEvent(eventId);
    } catch (error) {
      throw translatePgError(error, `read event ${eventId}`);
    }
    if (event === undefined) {
      const now = this.now();
      // An event that is gone (never, in practice: events are archived, not deleted) goes from both.
      this.entries.delete(eventId);
      this.missing.set(eventId, now + MISSING_EVENT_CACHE_TTL_MS);
      evictOldest(this.missing, MAX_CACHED_EVENTS);
      return undefined;
    }
    const mapKey = `${event.id}\n${event.layoutHash}\n${event.shardCount}`;
    let map = this.maps.get(mapKey);
    if (map === undefined) {
      const validation = validateLayout(event.layout);
      if (!validation.ok) {
        throw new SentinelError(
          'event_layout_invalid',
          `event ${event.id} has an invalid stored layout: ${validation.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
        );
      }
      map = shardMap(validation.layout, event.shardCount);
      for (const key of this.maps.keys()) if (key.startsWith(`${event.id}\n`)) this.maps.delete(key);
      this.maps.set(mapKey, map);
      evictOldest(this.maps, MAX_CACHED_EVENTS);
    }
    const value: RoutableEvent = { event, map, admission: admissionRateOf(event.admissionRate) };
    const now = this.now();
    this.missing.delete(eventId);
    this.entries.set(eventId, { value, expiresAt: now + this.ttlMs, refreshAt: now + this.ttlMs / 2 });
    evictOldest(this.entries, MAX_CACHED_EVENTS);
    return value;
  }
}

/**
 * The latest time the sale of an event that is not open now may have stopped selling (epoch ms), as
 * far as its row tells: engines stop serving a sale when they notice, at their next round, that it
 * is not open any more, so `CommandRouteDeps.closeSettleMs` counts from here.
 *
 * - Not changed since its closing time: its closing time — or, closed early (status), the change.
 * - Changed after its closing time: the change — the closing time may have been moved into the
 *   past by that very change (the sale was open until then), or it was archived after the close
 *   (which errs on the safe side: a later time only means a longer wait before sale-not-open).
 * - Not open yet: the last change — if it was ever open, its opening was moved later by a change.
 */
export function saleStoppedAt(event: StoredEvent, now: number): number {
  const closes = event.saleClosesAt.getTime();
  const changed = event.updatedAt?.getTime();
  const notYetOpen = saleState(event, now) === 'not-yet-open';
  if (changed === undefined) return notYetOpen ? -Infinity : closes;
  return changed > closes || event.status !== 'open' || notYetOpen ? changed : closes;
}
