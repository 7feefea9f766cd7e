/**
 * The group commits of an engine's shards, written together (ADR 0009, addendum of 2026-12-05).
 * Each shard commits what it decided while its previous commit was being written (GroupCommitter);
 * an engine serving eight shards of a sale made eight such streams of small commits, and a commit
 * costs Postgres, the engine and the relay far more per call than per row. Here the commits that
 * shards of one event hand in while one of theirs is under way go next as one call and one
 * transaction (`InventoryStore.commitShards`); a commit handed in while nothing is under way goes
 * at the end of the current turn of the event loop, with whatever else came in that turn.
 *
 * Each shard still gets exactly the answer its own commit would have given: when a commit of
 * several shards does not commit (Postgres refused it as a whole — a shard fenced, the customer
 * limit, a deadlock — or its connection failed), each shard's part goes again on its own, which
 * names the shard at fault and the customers refused. A commit of one shard is the shard's own
 * commit, as before.
 *
 * The price: a commit of several that waits on a lock holds up the next commit of the event's
 * other shards on this engine (until it ends, within the statement timeout; the parts that then go
 * alone do not); a refusal of one shard costs the others of its commit a second round trip; and
 * when the answer to a commit of several is lost, every shard in it stops and is rebuilt (its
 * outcome is not known), where one shard's lost answer stopped only that shard.
 */
import type { InventoryStore, ShardCommit, UsageCheck } from '../adapters/postgres/inventory-store.js';
import { FencedError, SentinelError } from '../errors.js';
import type { BatchWrite } from './batch-write.js';

/** Where a shard commits: `InventoryStore.commitBatch`'s contract. */
export interface CommitStore {
  commitBatch(eventId: string, shard: number, epoch: number, limit: number, batch: BatchWrite, topic: string): Promise<UsageCheck>;
}

/**
 * A Postgres transaction the engine asked for: a commit of several shards that committed, one that
 * did not (refused as a whole, or failed), or a commit of one shard (whatever its outcome).
 */
export type CommitWay = 'together' | 'together-refused' | 'alone';

/** Most rows (seats, pools, holds, reservations, keys) in one commit of several shards. */
export const MAX_ROWS_TOGETHER = 4096;

interface Part extends ShardCommit {
  readonly resolve: (check: UsageCheck) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The commits of one event (and topic and limit: everything a commit shares) waiting. A queue
 * exists while a flush of it is due (scheduled, or under way): what arrives meanwhile waits for the next.
 */
interface Queue {
  readonly eventId: string;
  readonly topic: string;
  readonly limit: number;
  waiting: Part[];
}

function rowsOf(batch: BatchWrite): number {
  return batch.seats.size + batch.pools.size + batch.holds.size + batch.reservations.length + batch.idempotency.length + batch.usage.size;
}

/**
 * Splits parts into commits of several shards: each within `maxRows` (a part alone may exceed it),
 * and no customer's usage in two parts of one commit (one statement cannot upsert a row twice).
 */
export function groupParts<T extends ShardCommit>(parts: readonly T[], maxRows = MAX_ROWS_TOGETHER): T[][] {
  const groups: { parts: T[]; rows: number; customers: Set<string> }[] = [];
  for (const part of parts) {
    const rows = rowsOf(part.batch);
    const customers = [...part.batch.usage.keys()];
    const fits = groups.find((g) => g.rows + rows <= maxRows && !customers.some((c) => g.customers.has(c)));
    if (fits === undefined) groups.push({ parts: [part], rows, customers: new Set(customers) });
    else {
      fits.parts.push(part);
      fits.rows += rows;
      for (const c of customers) fits.customers.add(c);
    }
  }
  return groups.map((g) => g.parts);
}

export class ShardCommits implements CommitStore {
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly store: Pick<InventoryStore, 'commitBatch' | 'commitShards'>,
    /** Called once per transaction asked for. */
    private readonly counted: (way: CommitWay) => void = () => undefined,
    private readonly maxRows = MAX_ROWS_TOGETHER,
  ) {}

  commitBatch(eventId: string, shard: number, epoch: number, limit: number, batch: BatchWrite, topic: string): Promise<UsageCheck> {
    const key = `${eventId}\n${topic}\n${limit}`;
    return new Promise<UsageCheck>((resolve, reject) => {
      const part = { shard, epoch, batch, resolve, reject };
      const queue = this.queues.get(key);
      if (queue !== undefined) {
        queue.waiting.push(part);
        return;
      }
      const created: Queue = { eventId, topic, limit, waiting: [part] };
      this.queues.set(key, created);
      setImmediate(() => this.flush(key, created));
    });
  }

  /**
   * Writes everything waiting; then, if more came in meanwhile, that; else forgets the queue. Every
   * part's promise settles, whatever fails: a queue left busy would hold its event's commits for good.
   */
  private flush(key: string, queue: Queue): void {
    const parts = queue.waiting;
    queue.waiting = [];
    const groups = groupParts(parts, this.maxRows).map((group) =>
      this.commitGroup(queue, group).catch((error: unknown) => {
        for (const part of group) part.reject(error); // a no-op for those settled already
      }),
    );
    void Promise.all(groups).finally(() => {
      if (queue.waiting.length > 0) this.flush(key, queue);
      else this.queues.delete(key);
    });
  }

  /**
   * Commits one group; done once its commit of several has ended. Refused as a whole, or without an
   * answer (its connection lost), each part then goes again on its own — not holding up the next
   * flush (a shard has one commit in flight at most: nothing of its own can overtake it) — and gets
   * its own shard's answer: one connection's failure does not stop every shard of the group. A
   * repeat cannot write twice: a commit that did land meets its rows at new versions.
   */
  private async commitGroup(queue: Queue, group: Part[]): Promise<void> {
    if (group.length === 1) return this.alone(queue, group[0]!, false);
    let outcome: 'committed' | 'refused' | 'unknown';
    try {
      outcome = await this.store.commitShards(queue.eventId, queue.limit, group, queue.topic);
    } catch {
      outcome = 'unknown';
    }
    this.counted(outcome === 'committed' ? 'together' : 'together-refused');
    if (outcome === 'committed') for (const part of group) part.resolve({ refused: new Map() });
    else for (const part of group) this.alone(queue, part, outcome === 'unknown').catch(() => undefined); // settles its part itself
  }

  /**
   * A part's own commit. After a commit of several whose answer was lost, a part refused may have
   * been written by that very commit: its rows at new versions (a VersionConflictError, which is a
   * FencedError), or over the customer limit (the limit is checked before the rows, and counts the
   * customers' growth that landed a second time). Either is an outcome not known, not a take-over
   * or a customer to refuse: it stops the shard all the same (it is rebuilt from what Postgres
   * holds) and is reported as such.
   */
  private async alone(queue: Queue, part: Part, afterUnknown: boolean): Promise<void> {
    const unknown = (cause: unknown) =>
      new SentinelError(
        'commit_outcome_unknown',
        `shard ${queue.eventId}/${part.shard}: a commit with other shards got no answer and may have written this one`,
        { retryable: true, cause },
      );
    try {
      const check = await this.store.commitBatch(queue.eventId, part.shard, part.epoch, queue.limit, part.batch, queue.topic);
      if (afterUnknown && check.refused.size > 0)
        part.reject(unknown(new Error(`customer limit refused ${[...check.refused.keys()].join(', ')}`)));
      else part.resolve(check);
    } catch (error) {
      part.reject(afterUnknown && error instanceof FencedError ? unknown(error) : error);
    } finally {
      this.counted('alone');
    }
  }
}
