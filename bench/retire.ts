/**
 * Ends a benchmark's event: closes its sale and deletes its Redis keys. A run leaves a hundred
 * thousand idempotency records behind, kept for a day by design; nobody will replay them, and a
 * Redis that grows by that much per run is slower (and snapshots longer) in the next one.
 */
import type pg from 'pg';
import { connectRedis, createRedis } from '../src/adapters/redis/client.js';
import { closeEvent } from '../src/engine/provision.js';
import { forgetEventKeys } from '../src/ingress/redis-scripts.js';
import { silentLogger } from '../src/log.js';

export async function retireBenchEvent(pool: pg.Pool, redisUrl: string, eventId: string): Promise<void> {
  await closeEvent(pool, eventId).catch(() => undefined);
  const redis = createRedis({ url: redisUrl, log: silentLogger, name: 'bench-cleanup' });
  try {
    await connectRedis(redis);
    await forgetEventKeys(redis, eventId);
  } catch {
    // best effort: the keys expire by themselves
  } finally {
    redis.disconnect();
  }
}
