/** Waiting: for a condition to hold, for an event's shards to be served before a load starts. */
import type pg from 'pg';
import { SentinelError } from '../errors.js';

/**
 * Resolves once every shard of the event has an owner; throws after `timeoutMs`. Returns early,
 * without a word, once `signal` fires: the caller, who stopped waiting, checks it.
 */
export async function waitForShards(pool: pg.Pool, eventId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) return;
    const { rows } = await pool.query<{ total: number; owned: number }>(
      'SELECT count(*)::int AS total, count(owner)::int AS owned FROM shards WHERE event_id = $1',
      [eventId],
    );
    const { total = 0, owned = 0 } = rows[0] ?? {};
    if (total > 0 && owned === total) return;
    if (Date.now() > deadline)
      throw new SentinelError('shards_unowned', `${owned}/${total} shards of ${eventId} owned after ${timeoutMs} ms`, { retryable: true });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws, naming `what`). */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
