/** Which shards an engine serves, for the jobs: their leases in Redis (`heldShardLeases`). */
import { connectRedis, createRedis } from '../adapters/redis/client.js';
import { heldShardLeases } from '../engine/shard-lease.js';
import type { Logger } from '../log.js';

export interface ShardLeaseReader {
  /** The shards of `eventId` whose lease an engine holds now. */
  readonly leases: (eventId: string, shardCount: number) => Promise<Set<number>>;
  readonly close: () => void;
}

/** A reader with a Redis client of its own, connected on first use (a job that never asks never connects). */
export function shardLeaseReader(url: string, log: Logger): ShardLeaseReader {
  const redis = createRedis({ url, log, name: 'sentinel-jobs', commandTimeoutMs: 5000 });
  return {
    leases: async (eventId, shardCount) => {
      await connectRedis(redis);
      return heldShardLeases(redis, eventId, shardCount);
    },
    close: () => redis.disconnect(),
  };
}
