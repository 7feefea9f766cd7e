import type { Redis } from 'ioredis';

/**
 * Engine membership in Redis, per group (engines serving one event, or all events): each live
 * engine refreshes its score (an expiry time) in the group's sorted set; an engine that stops
 * refreshing falls out after `ttlMs`. Every engine of the group reads the same set, so shard
 * assignment converges without a coordinator. Engines only balance within their group, so every
 * engine serving an event must be started with the same SENTINEL_EVENT.
 *
 * Beside the set, a hash records when each member (re)joined: at its first renewal after it
 * started, or after a time in which it could not renew (Engine: its NATS link was not ok). It
 * tells an engine cut off from NATS which members stayed reachable all along (`servingSince`).
 */
export class Membership {
  private readonly key: string;
  private readonly joinedKey: string;

  constructor(
    group: string,
    private readonly redis: Redis,
    private readonly engineId: string,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    this.key = `sentinel:engines:${group}`;
    this.joinedKey = `sentinel:engines:${group}:joined`;
  }

  /**
   * Announces (or refreshes) this engine and returns the live members, itself included. `rejoined`:
   * its first renewal since it started, left, had a break of its NATS link or went a TTL without
   * renewing — its join time is recorded anew, and the join times of engines no longer members are
   * dropped. Any other renewal records a join time only if there is none (another engine's cleanup
   * raced this one's renewal): now, which is never too early. Both keys expire when no engine has
   * renewed for ten TTLs.
   */
  async heartbeat(rejoined = false): Promise<string[]> {
    const now = this.now();
    const transaction = this.redis
      .multi()
      .zadd(this.key, now + this.ttlMs, this.engineId)
      .zremrangebyscore(this.key, '-inf', now)
      .zrange(this.key, 0, -1);
    if (rejoined) transaction.hset(this.joinedKey, this.engineId, String(now));
    else transaction.hsetnx(this.joinedKey, this.engineId, String(now));
    transaction.pexpire(this.key, 10 * this.ttlMs).pexpire(this.joinedKey, 10 * this.ttlMs);
    // The join times of all, only to drop those of engines gone: at a rejoin, not every renewal.
    if (rejoined) transaction.hkeys(this.joinedKey);
    const replies = (await transaction.exec()) as [Error | null, unknown][];
    const failed = replies.find(([error]) => error);
    if (failed) throw failed[0];
    const members = replies[2]![1] as string[];
    if (rejoined) {
      const joined = replies[6]![1] as string[];
      const gone = joined.filter((id) => id !== this.engineId && !members.includes(id));
      // Best effort: a join time left behind is dropped at the next rejoin, and counts for nobody meanwhile.
      if (gone.length > 0) await this.redis.hdel(this.joinedKey, ...gone).catch(() => undefined);
    }
    return members;
  }

  /**
   * The other engines that were members before `joinedBeforeMs` and have renewed since then
   * without a break — joined before it, and renewed after `renewedAfterMs`. Times are this
   * engine's clock; members write theirs, so clocks must agree to well within a lease TTL, as they
   * must for the membership itself. An engine of a release that records no join time is never one.
   */
  async servingSince(joinedBeforeMs: number, renewedAfterMs: number): Promise<string[]> {
    const renewed = (await this.redis.zrangebyscore(this.key, `(${renewedAfterMs + this.ttlMs}`, '+inf')).filter(
      (id) => id !== this.engineId,
    );
    if (renewed.length === 0) return [];
    const joined = await this.redis.hmget(this.joinedKey, ...renewed);
    return renewed.filter((_, i) => joined[i] !== null && Number(joined[i]) < joinedBeforeMs);
  }

  /** Leaves at once (graceful shutdown, or cut off), so the others rebalance without waiting for the TTL. */
  async leave(): Promise<void> {
    await this.redis.multi().zrem(this.key, this.engineId).hdel(this.joinedKey, this.engineId).exec();
  }
}
