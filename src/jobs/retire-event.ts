/**
 * Ends a job's own event: closes its sale and deletes its Redis keys. A run leaves thousands (a
 * bench, a hundred thousand) of Idempotency-Key records behind, kept for a day by design; nobody
 * will replay them, and a Redis that grows by that much per run is slower, snapshots longer and
 * loads them all again on every restart. Best effort: the keys expire by themselves.
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { closeEvent } from '../engine/provision.js';
import { forgetEventKeys } from '../ingress/redis-scripts.js';

export async function retireEvent(pool: pg.Pool, redis: () => Promise<Redis>, eventId: string): Promise<void> {
  await closeEvent(pool, eventId).catch(() => undefined);
  await redis()
    .then((client) => forgetEventKeys(client, eventId))
    .catch(() => undefined);
}
