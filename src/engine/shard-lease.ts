import { Redlock, type Lock } from '@sesamecare-oss/redlock';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';

/**
 * A Redis lease on one shard (Redlock on a single Redis: a random token, a TTL, extended every
 * third of the TTL). The lease only says who SHOULD own a shard; correctness comes from the
 * Postgres epoch every commit checks. If an extension fails or the lease runs out before it could
 * be extended, `onLost` fires once and the owner must stop serving at once.
 */
export class ShardLease {
  private lock: Lock;
  private timer: NodeJS.Timeout | undefined;
  private lost = false;
  private released = false;

  private constructor(
    lock: Lock,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly onLost: (reason: string) => void,
  ) {
    this.lock = lock;
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

  private schedule(): void {
    this.timer = setTimeout(() => void this.extend(), Math.max(10, Math.floor(this.ttlMs / 3)));
  }

  private async extend(): Promise<void> {
    if (this.released || this.lost) return;
    // A process paused past its expiry (SIGSTOP, GC) must not extend a lease someone else may hold.
    if (Date.now() >= this.lock.expiration) return this.markLost('lease expired before it could be extended');
    try {
      this.lock = await this.lock.extend(this.ttlMs);
      if (!this.released) this.schedule();
    } catch (error) {
      this.markLost(`extension failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private markLost(reason: string): void {
    if (this.lost || this.released) return;
    this.lost = true;
    this.log.warn({ resource: this.lock.resources[0], reason }, 'Lost shard lease');
    this.onLost(reason);
  }

  /** Stops extending and deletes the lease if it is still ours (hand-off). */
  async release(): Promise<void> {
    this.released = true;
    clearTimeout(this.timer);
    if (this.lost) return;
    await this.lock.release().catch(() => undefined);
  }
}

/** A Redlock over one Redis (the `redlock` role of the design card). */
export function createRedlock(redis: Redis): Redlock {
  return new Redlock([redis], { retryCount: 0, driftFactor: 0.01, automaticExtensionThreshold: 200 });
}
