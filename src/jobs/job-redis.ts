/** A Redis client for the jobs, connected on first use: a job that never needs Redis never connects. */
import { connectRedis, createRedis, type Redis } from '../adapters/redis/client.js';
import { heldShardLeases } from '../engine/shard-lease.js';
import type { Logger } from '../log.js';

export interface JobRedis {
  /** The client, connected. */
  readonly connected: () => Promise<Redis>;
  /** The shards of `eventId` whose lease an engine holds now (`heldShardLeases`). */
  readonly leases: (eventId: string, shardCount: number) => Promise<Set<number>>;
  readonly close: () => void;
}

export function jobRedis(url: string, log: Logger): JobRedis {
  const redis = createRedis({ url, log, name: 'sentinel-jobs', commandTimeoutMs: 5000 });
  const connected = async () => {
    await connectRedis(redis);
    return redis;
  };
  return {
    connected,
    leases: async (eventId, shardCount) => heldShardLeases(await connected(), eventId, shardCount),
    close: () => redis.disconnect(),
  };
}
