/**
 * Deletes what no reader needs any more, so that the tables every command writes do not grow with
 * every sale for ever (ADR 0006, item 11):
 *
 * - `idempotency_keys` rows older than the idempotency window (`SENTINEL_IDEMPOTENCY_TTL_S`) plus
 *   an hour: a shard loads only the keys of the window when it takes a shard over
 *   (`Engine.loadShard`), and the ingress replays what a shard committed only within it
 *   (`replayCommitted`), so an older key is never read again — a retry that late is a new request;
 * - `outbox` rows published more than `SENTINEL_OUTBOX_RETENTION_S` ago (7 days by default, Kafka's
 *   default retention: the topic forgets them then too). Unpublished rows are never deleted.
 *
 * Reservations, holds and seats are the sale's record and stay. `sentinel verify` reads both
 * tables, so verify a sale within those windows (it would report an outbox row missing for a
 * reservation whose row was deleted).
 *
 * Every engine runs a pass now and then; a Postgres advisory lock lets one at a time work (the
 * others skip the pass). A pass deletes in batches, each one statement of its own with a pause
 * after it, so it never holds locks for long nor takes Postgres from the commits of a sale for
 * more than a few milliseconds at a time, and stops after `maxRows` (the next pass goes on).
 */
import type pg from 'pg';
import { checkout } from '../adapters/postgres/pool.js';
import type { Logger } from '../log.js';

/** Margin on top of the idempotency window before a key is deleted (ms): clocks and the window's edges. */
export const IDEMPOTENCY_MARGIN_MS = 3_600_000;

/** The advisory lock key of a pass (one per database: `pg_try_advisory_lock(bigint)`). */
const LOCK_KEY = '7338036226151645793';

export interface RetentionOptions {
  /** The idempotency window (ms): keys older than this plus `IDEMPOTENCY_MARGIN_MS` go. */
  readonly idempotencyTtlMs: number;
  /** How long a published outbox row is kept (ms). */
  readonly outboxRetentionMs: number;
  /** Rows per delete statement. */
  readonly batchSize: number;
  /** Pause after each batch that deleted rows (ms). */
  readonly pauseMs: number;
  /** Most rows one pass deletes; the next pass goes on. */
  readonly maxRows: number;
}

export const DEFAULT_RETENTION: Omit<RetentionOptions, 'idempotencyTtlMs' | 'outboxRetentionMs'> = {
  batchSize: 2000,
  pauseMs: 100,
  maxRows: 400_000,
};

/** What one pass did: rows deleted per table, or that another engine's pass held the lock. */
export type RetentionPass = { readonly ran: true; readonly idempotencyKeys: number; readonly outbox: number } | { readonly ran: false };

/**
 * One pass: deletes expired idempotency keys (event by event, through the primary key) and
 * old published outbox rows (oldest first, through the primary key), unless another pass holds the
 * lock. `now` in epoch ms; `stopped` is asked between batches.
 */
export async function prunePass(
  pool: pg.Pool,
  options: RetentionOptions,
  now: number,
  stopped: () => boolean = () => false,
): Promise<RetentionPass> {
  const client = await checkout(pool, 'retention');
  let broken = false;
  try {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [LOCK_KEY]);
    if (rows[0]?.locked !== true) return { ran: false };
    try {
      let rowsLeft = options.maxRows;
      const more = () => !stopped() && rowsLeft > 0;
      /** One delete statement of at most `limit` rows (its SQL's `deleted`), and the pause after it. */
      const batch = async <R extends { deleted: number }>(
        sql: string,
        values: (limit: number) => unknown[],
      ): Promise<R & { limit: number }> => {
        const limit = Math.min(options.batchSize, rowsLeft);
        const row = (await client.query<R>(sql, values(limit))).rows[0]!;
        rowsLeft -= row.deleted;
        if (row.deleted > 0 && options.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
        return { ...row, limit };
      };

      let idempotencyKeys = 0;
      const keysBefore = new Date(now - options.idempotencyTtlMs - IDEMPOTENCY_MARGIN_MS);
      const events = await client.query<{ id: string }>('SELECT id FROM events ORDER BY id');
      for (const { id } of events.rows) {
        while (more()) {
          // The primary key's range of one event, filtered by age; the age is checked again on the
          // row deleted (a concurrent commit may have renewed it: ON CONFLICT … DO UPDATE).
          const { deleted, limit } = await batch(
            `WITH gone AS (
               DELETE FROM idempotency_keys k
                USING (SELECT event_id, shard, key, customer FROM idempotency_keys
                        WHERE event_id = $1 AND created_at < $2 LIMIT $3) old
                WHERE (k.event_id, k.shard, k.key, k.customer) = (old.event_id, old.shard, old.key, old.customer)
                  AND k.created_at < $2
                RETURNING 1)
             SELECT count(*)::int AS deleted FROM gone`,
            (limit) => [id, keysBefore, limit],
          );
          idempotencyKeys += deleted;
          if (deleted < limit) break;
        }
      }

      // The outbox from its oldest row (the primary key's order is the order rows were written, and
      // so, roughly, published), a batch at a time: each batch deletes its rows published before the
      // cut-off, and the walk ends at the first batch with a row published since (the frontier) or
      // at the end. Rows never published are stepped over, never deleted, and never stop the walk.
      let outbox = 0;
      const publishedBefore = new Date(now - options.outboxRetentionMs);
      let after = '0';
      while (more()) {
        const step = await batch<{ deleted: number; scanned: number; last: string | null; frontier: boolean }>(
          `WITH head AS (SELECT id, published_at FROM outbox WHERE id > $1::bigint ORDER BY id LIMIT $2),
                gone AS (DELETE FROM outbox o USING head h WHERE o.id = h.id AND h.published_at < $3 RETURNING 1)
           SELECT (SELECT count(*) FROM gone)::int AS deleted,
                  (SELECT count(*) FROM head)::int AS scanned,
                  (SELECT max(id) FROM head)::text AS last,
                  EXISTS (SELECT 1 FROM head WHERE published_at >= $3) AS frontier`,
          (limit) => [after, limit, publishedBefore],
        );
        outbox += step.deleted;
        if (step.frontier || step.scanned < step.limit || step.last === null) break;
        after = step.last;
      }
      return { ran: true, idempotencyKeys, outbox };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [LOCK_KEY]).catch(() => {
        // The session lock goes with the connection: do not return it to the pool still holding it.
        broken = true;
      });
    }
  } catch (error) {
    broken = true;
    throw error;
  } finally {
    client.release(broken);
  }
}

/** Runs `prunePass` every `intervalMs` (jittered), logging what it deleted. */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly deps: {
      readonly pool: pg.Pool;
      readonly options: RetentionOptions;
      readonly intervalMs: number;
      readonly log: Logger;
      readonly onDeleted?: (table: 'idempotency_keys' | 'outbox', rows: number) => void;
      readonly now?: () => number;
    },
  ) {}

  /** The first pass comes after a random part of the interval: engines started together do not all look at once. */
  start(): void {
    this.schedule(Math.random() * this.deps.intervalMs);
  }

  /** Ends the loop; a pass under way stops after its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().finally(() => {
        this.running = undefined;
        this.schedule(this.deps.intervalMs * (0.9 + Math.random() * 0.2));
      });
    }, delayMs);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    const { log } = this.deps;
    try {
      const pass = await prunePass(this.deps.pool, this.deps.options, (this.deps.now ?? Date.now)(), () => this.stopped);
      if (!pass.ran) {
        log.debug('Retention: another engine is pruning');
        return;
      }
      this.deps.onDeleted?.('idempotency_keys', pass.idempotencyKeys);
      this.deps.onDeleted?.('outbox', pass.outbox);
      if (pass.idempotencyKeys + pass.outbox > 0)
        log.info({ idempotencyKeys: pass.idempotencyKeys, outbox: pass.outbox }, 'Retention: deleted expired rows');
    } catch (error) {
      log.warn({ err: error }, 'Retention pass failed; trying again at the next');
    }
  }
}
