/** Ends a benchmark's event (retireEvent), with a Redis client of its own. */
import type pg from 'pg';
import { connectRedis, createRedis } from '../src/adapters/redis/client.js';
import { retireEvent } from '../src/jobs/retire-event.js';
import { silentLogger } from '../src/log.js';

export async function retireBenchEvent(pool: pg.Pool, redisUrl: string, eventId: string): Promise<void> {
  const redis = createRedis({ url: redisUrl, log: silentLogger, name: 'bench-cleanup' });
  try {
    await retireEvent(pool, () => connectRedis(redis).then(() => redis), eventId);
  } finally {
    redis.disconnect();
  }
}
