/**
 * Deletes what no reader needs any more, so that the tables every command writes do not grow with
 * every sale for ever (ADR 0006, item 11):
 *
 * - `idempotency_keys` rows older than the idempotency window plus an hour: a shard loads only the
 *   keys of the window when it takes a shard over (`Engine.loadShard`), and the ingress replays
 *   what a shard committed only within it (`replayCommitted`), so an older key is never read
 *   again — a retry that late is a new request. The window is this engine's
 *   (`SENTINEL_IDEMPOTENCY_TTL_S`) for the events it serves (all, or `SENTINEL_EVENT`'s); other
 *   events' engines may be configured otherwise, or gone with their sale, so their keys are kept
 *   for the longest window any engine may have (`MAX_IDEMPOTENCY_TTL_S`). (An engine serving every
 *   event applies its window to every event: engines of one event must not share its database
 *   with a shorter window — nor run beside them at all, as both would claim its shards.)
 * - `outbox` rows published more than `SENTINEL_OUTBOX_RETENTION_S` ago (7 days by default, Kafka's
 *   default retention: the topic forgets them then too). Unpublished rows are never deleted. The
 *   outbox is every engine's (any relay publishes any event's rows), so the shortest retention of
 *   the engines running wins.
 *
 * Reservations, holds and seats are the sale's record and stay. An event some of whose rows were
 * deleted is stamped (`events.pruned_at`): `sentinel verify` reads both tables, and refuses to
 * judge such an event rather than report violations that are only missing rows.
 *
 * Every engine runs a pass now and then: the outbox first (its walk is short), then the keys, event
 * by event, going on where the last pass stopped. Each batch is a short transaction of its own on a
 * pooled connection, taken only for that batch, which first takes a transaction-scoped advisory
 * lock (per `SENTINEL_EVENT` value): when another engine's batch holds it, this engine's pass ends.
 * Two passes of a group's engines may interleave their batches: each deletes what the other has
 * not yet (the deletes are shared, though each engine reads along its own cursor). A batch reads at most
 * `batchSize` rows along a primary key (never a scan of a table, or of an event's keys, in one
 * statement), and a pause follows each one that did work, so a pass takes Postgres from a sale's
 * commits for milliseconds at a time. A pass stops after deleting `maxRows` or reading `maxScanned`
 * rows; the next one goes on from there.
 */
import type pg from 'pg';
import { inTransaction } from '../adapters/postgres/pool.js';
import { MAX_IDEMPOTENCY_TTL_S } from '../config.js';
import type { Logger } from '../log.js';

/** Margin on top of the idempotency window before a key is deleted (ms): clocks and the window's edges. */
export const IDEMPOTENCY_MARGIN_MS = 3_600_000;

export interface RetentionOptions {
  /** The events this engine serves: one event id, or '' for all. */
  readonly eventFilter: string;
  /** This engine's idempotency window (ms), for the events it serves. */
  readonly idempotencyTtlMs: number;
  /** How long a published outbox row is kept (ms). */
  readonly outboxRetentionMs: number;
  /** Rows one batch reads at most. */
  readonly batchSize: number;
  /** Pause after each batch that read a full batch or deleted rows (ms). */
  readonly pauseMs: number;
  /** Most rows one pass deletes. */
  readonly maxRows: number;
  /** Most rows one pass reads. */
  readonly maxScanned: number;
}

export const DEFAULT_RETENTION: Omit<RetentionOptions, 'eventFilter' | 'idempotencyTtlMs' | 'outboxRetentionMs'> = {
  batchSize: 2000,
  pauseMs: 100,
  maxRows: 400_000,
  maxScanned: 2_000_000,
};

/** A key of an event's primary-key range after the event: (shard, key, customer). */
type KeyPosition = readonly [number, string, string];

/** Before every key of an event (shards are numbered from 0). */
const FIRST_KEY: KeyPosition = [-1, '', ''];

/** Where a pass stopped among the keys — an event, and the last key it read there: the next pass goes on from it. */
export interface KeyCursor {
  readonly eventId: string;
  readonly after: KeyPosition;
}

/**
 * What one pass did: rows deleted per table, batches that failed, and where among the keys it
 * stopped (none: it read every event's to the end); or that another engine's batch held the lock
 * before this pass did anything.
 */
export type RetentionPass =
  | {
      readonly ran: true;
      readonly idempotencyKeys: number;
      readonly outbox: number;
      readonly failed: number;
      readonly resume: KeyCursor | undefined;
    }
  | { readonly ran: false };

/** One batch's outcome, as its statement reports it. */
interface Step {
  readonly deleted: number;
  readonly scanned: number;
}

class LockBusy extends Error {}

/**
 * One pass: old published outbox rows (short: the walk ends at the first row published since),
 * then expired idempotency keys event by event, each along its primary key a batch at a time,
 * from `resume` (where the last pass stopped) on. `now` in epoch ms; `stopped` is asked between
 * batches. A batch that fails (a timeout, Postgres restarting) ends the outbox's or that event's
 * part of the pass, counted in `failed`; the rest goes on.
 */
export async function prunePass(
  pool: pg.Pool,
  options: RetentionOptions,
  now: number,
  log: Logger,
  at: { readonly resume?: KeyCursor | undefined; readonly stopped?: () => boolean } = {},
): Promise<RetentionPass> {
  let deletedLeft = options.maxRows;
  let scannedLeft = options.maxScanned;
  let batches = 0;
  const more = () => !(at.stopped?.() ?? false) && deletedLeft > 0 && scannedLeft > 0;
  const limit = () => Math.min(options.batchSize, deletedLeft, scannedLeft);
  /** One batch: its own transaction, under the group's lock; throws LockBusy when another engine holds it. */
  const batch = async <R extends Step>(sql: string, values: unknown[]): Promise<R> => {
    const row = await inTransaction(pool, 'retention batch', async (client) => {
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_xact_lock(hashtext('sentinel.retention:' || $1)) AS locked",
        [options.eventFilter],
      );
      return rows[0]?.locked === true ? (await client.query<R>(sql, values)).rows[0]! : undefined;
    });
    if (row === undefined) throw new LockBusy();
    batches++;
    deletedLeft -= row.deleted;
    scannedLeft -= row.scanned;
    if ((row.deleted > 0 || row.scanned >= options.batchSize) && options.pauseMs > 0)
      await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    return row;
  };

  let idempotencyKeys = 0;
  let outbox = 0;
  let failed = 0;
  // Where the keys' walk stands: where the last pass left it until this one moves it, and none once
  // this one has read every event to the end (the next starts again from the first).
  let resume = at.resume;
  const done = (): RetentionPass => ({ ran: true, idempotencyKeys, outbox, failed, resume });
  try {
    // The outbox walk reads at most half of the pass's budget: rows never published at its start
    // (a topic down for long) are read again by every pass, and must not leave nothing for the keys.
    const outboxReadLimit = options.maxScanned - Math.floor(options.maxScanned / 2);
    const outboxMore = () => more() && options.maxScanned - scannedLeft < outboxReadLimit;
    const outboxLimit = () => Math.min(limit(), outboxReadLimit - (options.maxScanned - scannedLeft));
    try {
      await pruneOutbox(new Date(now - options.outboxRetentionMs), {
        batch,
        more: outboxMore,
        limit: outboxLimit,
        deleted: (n) => (outbox += n),
      });
    } catch (error) {
      if (error instanceof LockBusy) throw error;
      failed++;
      log.warn({ err: error }, 'Retention: deleting old outbox rows failed; going on');
    }

    // The cut-off of each event's keys: this engine's window for the events it serves, the longest
    // any engine may have for the others. An event whose sale opened after its cut-off can have no
    // key older than it: not read at all.
    const ownKeysBefore = new Date(now - options.idempotencyTtlMs - IDEMPOTENCY_MARGIN_MS);
    const anyKeysBefore = new Date(now - MAX_IDEMPOTENCY_TTL_S * 1000 - IDEMPOTENCY_MARGIN_MS);
    const { rows: events } = await pool.query<{ id: string; before: Date }>(
      `SELECT id, before FROM (
         SELECT id, sale_opens_at, CASE WHEN $1 = '' OR id = $1 THEN $2::timestamptz ELSE $3::timestamptz END AS before FROM events) e
        WHERE sale_opens_at < before AND id >= $4 ORDER BY id`,
      [options.eventFilter, ownKeysBefore, anyKeysBefore, at.resume?.eventId ?? ''],
    );
    let walkedAll = true;
    for (const { id, before } of events) {
      const position = { after: at.resume?.eventId === id ? at.resume.after : FIRST_KEY };
      try {
        const finished = await pruneKeys(id, before, position, { batch, more, limit, deleted: (n) => (idempotencyKeys += n) });
        if (!finished) {
          resume = { eventId: id, after: position.after };
          walkedAll = false;
          break;
        }
      } catch (error) {
        if (error instanceof LockBusy) {
          resume = { eventId: id, after: position.after };
          throw error;
        }
        failed++;
        log.warn({ err: error, eventId: id }, 'Retention: deleting expired idempotency keys failed; going on');
      }
    }
    if (walkedAll) resume = undefined;
  } catch (error) {
    // Another engine's batch holds the lock: this pass ends, keeping what it did and where it was.
    if (error instanceof LockBusy) return batches > 0 ? done() : { ran: false };
    throw error;
  }
  return done();
}

/** What a walk over one table has of its pass: the batch runner, whether to go on, the size of the next batch, the count. */
interface Walk {
  readonly batch: <R extends Step>(sql: string, values: unknown[]) => Promise<R>;
  readonly more: () => boolean;
  readonly limit: () => number;
  readonly deleted: (rows: number) => void;
}

/**
 * An event's keys created before `before`, walked along the primary key (event, shard, key,
 * customer) a batch at a time from `position.after`, which it moves on; the age is checked again
 * on the row deleted (a concurrent commit may have renewed the key: ON CONFLICT … DO UPDATE).
 * Stamps the event when it deleted any (at most once a minute). Whether it read to the end of the
 * event's keys (false: the pass's budget ran out, or it was stopped).
 */
async function pruneKeys(eventId: string, before: Date, position: { after: KeyPosition }, walk: Walk): Promise<boolean> {
  const { batch, more, limit, deleted } = walk;
  for (;;) {
    if (!more()) return false;
    const size = limit();
    const step = await batch<Step & { last_shard: number | null; last_key: string | null; last_customer: string | null }>(
      `WITH head AS (
         SELECT shard, key, customer, created_at FROM idempotency_keys
          WHERE event_id = $1 AND (shard, key, customer) > ($2::int, $3::text, $4::text)
          ORDER BY shard, key, customer LIMIT $5),
       gone AS (
         DELETE FROM idempotency_keys k USING head h
          WHERE k.event_id = $1 AND (k.shard, k.key, k.customer) = (h.shard, h.key, h.customer)
            AND h.created_at < $6 AND k.created_at < $6
          RETURNING 1),
       -- Runs though nothing below reads it: a data-modifying WITH always runs, to completion.
       stamp AS (
         UPDATE events SET pruned_at = now()
          WHERE id = $1 AND EXISTS (SELECT 1 FROM gone) AND (pruned_at IS NULL OR pruned_at < now() - interval '1 minute')
          RETURNING 1),
       last AS (SELECT shard, key, customer FROM head ORDER BY shard DESC, key DESC, customer DESC LIMIT 1)
       SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM head)::int AS scanned,
              (SELECT shard FROM last) AS last_shard, (SELECT key FROM last) AS last_key, (SELECT customer FROM last) AS last_customer`,
      [eventId, ...position.after, size, before],
    );
    deleted(step.deleted);
    if (step.scanned < size || step.last_shard === null) return true;
    position.after = [step.last_shard, step.last_key ?? '', step.last_customer ?? ''];
  }
}

/**
 * Outbox rows published before `before`, from the oldest row (the primary key's order is the order
 * rows were written, and so, roughly, published) a batch at a time, until a batch holds a row
 * published since (the frontier) or the table ends. Rows never published are stepped over, never
 * deleted. Stamps the events whose rows it deleted (at most once a minute each).
 */
async function pruneOutbox(before: Date, { batch, more, limit, deleted }: Walk): Promise<void> {
  let after = '0';
  while (more()) {
    const size = limit();
    const step = await batch<Step & { last: string | null; frontier: boolean }>(
      `WITH head AS (SELECT id, event_id, published_at FROM outbox WHERE id > $1::bigint ORDER BY id LIMIT $2),
            gone AS (DELETE FROM outbox o USING head h WHERE o.id = h.id AND h.published_at < $3 RETURNING o.event_id),
            -- Runs though nothing below reads it (a data-modifying WITH always does).
            stamp AS (
              UPDATE events SET pruned_at = now()
               WHERE id IN (SELECT DISTINCT event_id FROM gone) AND (pruned_at IS NULL OR pruned_at < now() - interval '1 minute')
               RETURNING 1)
       SELECT (SELECT count(*) FROM gone)::int AS deleted,
              (SELECT count(*) FROM head)::int AS scanned,
              (SELECT max(id) FROM head)::text AS last,
              EXISTS (SELECT 1 FROM head WHERE published_at >= $3) AS frontier`,
      [after, size, before],
    );
    deleted(step.deleted);
    if (step.frontier || step.scanned < size || step.last === null) break;
    after = step.last;
  }
}

/** Runs `prunePass` every `intervalMs` (jittered), logging what it deleted. */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Where the last pass stopped among the keys. */
  private resume: KeyCursor | undefined;

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
      const pass = await prunePass(this.deps.pool, this.deps.options, (this.deps.now ?? Date.now)(), log, {
        resume: this.resume,
        stopped: () => this.stopped,
      });
      if (!pass.ran) {
        log.debug('Retention: another engine is pruning');
        return;
      }
      this.resume = pass.resume;
      this.deps.onDeleted?.('idempotency_keys', pass.idempotencyKeys);
      this.deps.onDeleted?.('outbox', pass.outbox);
      if (pass.idempotencyKeys + pass.outbox > 0)
        log.info({ idempotencyKeys: pass.idempotencyKeys, outbox: pass.outbox }, 'Retention: deleted expired rows');
    } catch (error) {
      log.warn({ err: error }, 'Retention pass failed; trying again at the next');
    }
  }
}
