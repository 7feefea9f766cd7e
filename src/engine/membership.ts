import type { Redis } from 'ioredis';

/**
 * Engine membership in Redis, per group (engines serving one event, or all events): each live
 * engine refreshes its score (an expiry time) in the group's sorted set; an engine that stops
 * refreshing falls out after `ttlMs`. Every engine of the group reads the same set, so shard
 * assignment converges without a coordinator. Engines only balance within their group, so every
 * engine serving an event must be started with the same SENTINEL_EVENT.
 */
export class Membership {
  private readonly key: string;

  constructor(
    group: string,
    private readonly redis: Redis,
    private readonly engineId: string,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    this.key = `sentinel:engines:${group}`;
  }

  /** Announces (or refreshes) this engine and returns the live members, itself included. */
  async heartbeat(): Promise<string[]> {
    const now = this.now();
    const [, , members] = (await this.redis
      .multi()
      .zadd(this.key, now + this.ttlMs, this.engineId)
      .zremrangebyscore(this.key, '-inf', now)
      .zrange(this.key, 0, -1)
      .exec()) as [unknown, unknown, [Error | null, string[]]];
    if (members[0]) throw members[0];
    return members[1];
  }

  /**
   * The other engines that renewed their membership after `sinceMs` (this engine's clock; members
   * renew with theirs, so clocks must agree to well within a lease TTL, as they must for the
   * membership itself).
   */
  async renewedSince(sinceMs: number): Promise<string[]> {
    const members = await this.redis.zrangebyscore(this.key, `(${sinceMs + this.ttlMs}`, '+inf');
    return members.filter((member) => member !== this.engineId);
  }

  /** Leaves at once (graceful shutdown), so the others rebalance without waiting for the TTL. */
  async leave(): Promise<void> {
    await this.redis.zrem(this.key, this.engineId);
  }
}
