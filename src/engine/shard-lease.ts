import { ExecutionError, Redlock, ResourceLockedError, type Lock } from '@sesamecare-oss/redlock';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';

/** The Redis key of a shard's lease: a Redlock resource, present while an engine holds it. */
export function shardLeaseKey(eventId: string, shard: number): string {
  return `sentinel:lease:${eventId}:${shard}`;
}

/** The shards of an event whose lease an engine holds now — the shards someone serves. */
export async function heldShardLeases(redis: Redis, eventId: string, shardCount: number): Promise<Set<number>> {
  const pipeline = redis.pipeline();
  for (let shard = 0; shard < shardCount; shard++) pipeline.exists(shardLeaseKey(eventId, shard));
  const replies = (await pipeline.exec()) ?? [];
  const held = new Set<number>();
  replies.forEach(([error, exists], shard) => {
    if (error) throw error;
    if (exists === 1) held.add(shard);
  });
  return held;
}

/** How soon an extension that could not reach Redis is tried again (ms). */
export const EXTENSION_RETRY_MS = 250;

/**
 * A Redis lease on one shard (Redlock on a single Redis: a random token, a TTL, extended every
 * third of the TTL). The lease only says who SHOULD own a shard; correctness comes from the
 * Postgres epoch every commit checks. If Redis refuses an extension (the key is no longer ours) or
 * the lease runs out before it could be extended, `onLost` fires once and the owner must stop
 * serving at once. An extension Redis could not be asked (it is restarting, or the connection is
 * down) is tried again every `EXTENSION_RETRY_MS` while the lease lasts: until it runs out nobody
 * else can take it — that is what a lease is — so a Redis restart shorter than the lease's time
 * left no longer stops every shard (until 2026-12-03 it did: each owner gave its shards up at the
 * first failed extension, and reloaded them from Postgres once Redis was back).
 *
 * "Runs out" is a timer of its own, armed at each expiry: an extension that never settles (Redis
 * unreachable from this engine while others still reach it) must not leave the lease looking held
 * past the moment another engine may take it.
 */
export class ShardLease {
  private lock: Lock;
  private timer: NodeJS.Timeout | undefined;
  /** Fires when the lease runs out without a successful extension. */
  private expiry: NodeJS.Timeout | undefined;
  private lost = false;
  private released = false;
  /** Extensions in a row that could not reach Redis (logged at the first, and when one succeeds again). */
  private unreached = 0;

  private constructor(
    lock: Lock,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly onLost: (reason: string) => void,
  ) {
    this.lock = lock;
    this.armExpiry();
    this.schedule();
  }

  /** Tries once to take the lease; resolves to undefined when another engine holds it. */
  static async tryAcquire(
    redlock: Redlock,
    key: string,
    ttlMs: number,
    log: Logger,
    onLost: (reason: string) => void,
  ): Promise<ShardLease | undefined> {
    try {
      const lock = await redlock.acquire([key], ttlMs, { retryCount: 0 });
      return new ShardLease(lock, ttlMs, log, onLost);
    } catch {
      return undefined;
    }
  }

  /** Epoch-ms time the lease runs out unless extended. */
  get expiresAt(): number {
    return this.lock.expiration;
  }

  get isLost(): boolean {
    return this.lost;
  }

  /**
   * Whether the lease is ours right now: not lost, not released, and not past its expiry by this
   * process's clock (which Redlock already shortened by the clock drift allowance) — true only
   * while no other engine can have taken it.
   */
  get isHeld(): boolean {
    return !this.lost && !this.released && Date.now() < this.lock.expiration;
  }

  /**
   * `isHeld`, for a caller about to act on the lease: one that has run out is given up for lost
   * here and now (`onLost` fires) instead of when its timer gets to run. Otherwise an extension
   * answered in the same turn — after the caller stopped acting on the lease — would re-arm it,
   * and the lease would look held by an owner that no longer serves the shard.
   */
  holdOrLose(): boolean {
    if (this.isHeld) return true;
    this.markLost('lease ran out before an extension succeeded');
    return false;
  }

  private armExpiry(): void {
    clearTimeout(this.expiry);
    this.expiry = setTimeout(
      () => this.markLost('lease ran out before an extension succeeded'),
      Math.max(0, this.lock.expiration - Date.now()),
    );
  }

  private schedule(delayMs = Math.max(10, Math.floor(this.ttlMs / 3))): void {
    this.timer = setTimeout(() => void this.extend(), delayMs);
  }

  private async extend(): Promise<void> {
    if (this.released || this.lost) return;
    // A process paused past its expiry (SIGSTOP, GC) must not extend a lease someone else may hold.
    if (Date.now() >= this.lock.expiration) return this.markLost('lease expired before it could be extended');
    try {
      const extended = await this.lock.extend(this.ttlMs);
      if (this.lost) {
        // It came back after the lease was given up for lost: another engine may own the shard
        // now, and this one stopped serving it. Let go of the key (if it is still ours).
        await extended.release().catch(() => undefined);
        return;
      }
      this.lock = extended;
      if (this.unreached > 0) {
        this.log.info({ resource: this.lock.resources[0], attempts: this.unreached + 1 }, 'Shard lease extended again');
        this.unreached = 0;
      }
      if (this.released) return; // released while the extension was in flight: no timer to arm
      this.armExpiry();
      this.schedule();
    } catch (error) {
      const why = `extension failed: ${error instanceof Error ? error.message : String(error)}`;
      if (await refusedByRedis(error)) return this.markLost(why);
      if (this.lost || this.released) return;
      // Redis was not reached: the lease is still ours until it runs out (the expiry timer).
      if (this.unreached++ === 0) {
        this.log.warn(
          { resource: this.lock.resources[0], reason: why, expiresInMs: this.lock.expiration - Date.now() },
          'Shard lease not extended; retrying',
        );
      }
      this.schedule(Math.min(EXTENSION_RETRY_MS, Math.max(10, Math.floor(this.ttlMs / 3))));
    }
  }

  private markLost(reason: string): void {
    if (this.lost || this.released) return;
    this.lost = true;
    clearTimeout(this.timer);
    clearTimeout(this.expiry);
    this.log.warn({ resource: this.lock.resources[0], reason }, 'Lost shard lease');
    this.onLost(reason);
    // Given up: if Redis still has it as ours (its TTL outlasts this clock's drift-shortened
    // expiry), let it go, so the next owner need not wait it out. Token-checked, so never another
    // engine's; not awaited, since Redis may be what failed.
    this.lock.release().catch(() => undefined);
  }

  /** Stops extending and deletes the lease if it is still ours (hand-off). */
  async release(): Promise<void> {
    this.released = true;
    clearTimeout(this.timer);
    clearTimeout(this.expiry);
    if (this.lost) return;
    await this.lock.release().catch(() => undefined);
  }
}

/**
 * Whether a failed extension was Redis saying no — the key is gone or another's — rather than
 * anything else: Redis not reached (a connection error, a client not ready), or an error reply
 * (OOM, MISCONF, BUSY…), which are tried again; the expiry timer bounds them all. An error that
 * is not Redlock's, or one made without asking Redis (the lock had expired), counts as a refusal.
 */
async function refusedByRedis(error: unknown): Promise<boolean> {
  if (!(error instanceof ExecutionError) || error.attempts.length === 0) return true;
  const stats = await Promise.all(error.attempts);
  return stats.some((attempt) => [...attempt.votesAgainst.values()].some((vote) => vote instanceof ResourceLockedError));
}

/** A Redlock over one Redis (the `redlock` role of the design card). */
export function createRedlock(redis: Redis): Redlock {
  return new Redlock([redis], { retryCount: 0, driftFactor: 0.01, automaticExtensionThreshold: 200 });
}
