import type { Msg, NatsConnection, Subscription } from 'nats';
import { guardedCallback } from '../adapters/nats/guarded-callback.js';
import { idempotencyScope } from '../domain/idempotency.js';
import {
  seatsUnavailable,
  type CustomerId,
  type ReservationView,
  type SeatId,
  type ShardChange,
  type ShardCommand,
  type ShardResult,
} from '../domain/commands.js';
import { FencedError, SentinelError, VersionConflictError } from '../errors.js';
import type { ShardSettings } from '../domain/shard-settings.js';
import type { Logger } from '../log.js';
import { emptyBatchWrite, foldChanges, overLimit, withoutHeldPlaces } from './batch-write.js';
import { GroupCommitter } from './group-commit.js';
import type { EngineMetrics } from './metrics.js';
import {
  decodeRequests,
  encode,
  ReplySink,
  salesSubject,
  sendWithin,
  shardSubject,
  type ShardReply,
  type ShardRequest,
} from './protocol.js';
import type { CommitStore } from './shard-commits.js';

/**
 * The decision-maker a host drives: the shard actor, seen through the few operations the engine
 * needs. `decide` is synchronous — the actor decides in memory, nothing waits.
 */
export interface ShardDecider {
  /** `replayed`: the key's remembered result, given again — nothing was decided (Decision.replayed). */
  decide(command: ShardCommand): { result: ShardResult; changes: readonly ShardChange[]; replayed?: boolean };
  /**
   * Undo an in-memory decision that could not be persisted (event-wide limit refused it); false if
   * it cannot be undone. With `writtenPoolVersion` the caller writes the hold's pool itself, at that
   * version, and with `laterAdjusted` takes its places out of later decisions' recorded counters
   * too (see ShardInventory.abort).
   */
  abort(holdId: string, writtenPoolVersion?: number, laterAdjusted?: boolean): boolean;
  /** Decide by the event's new rules from now on (see ShardInventory.applyRules); throws for rules out of bounds. */
  applyRules(rules: EventRules): void;
  /** Stop taking commands (hand-off). */
  drain(): void;
  /** Ends every live hold, as expired (the sale closed); returns the changes to persist. */
  expireAll(): readonly ShardChange[];
  /** This owner was fenced or failed: refuse everything from now on. */
  fence(reason: string): void;
  stop(): void;
}

/** The event's rules a shard follows while it is served: an operator may change them mid-sale. */
export type EventRules = Pick<ShardSettings, 'holdTtlMs' | 'customerLimit'>;

/** One unit of a group commit: a winner's changes and how to answer it. */
interface CommitEntry {
  readonly command: ShardCommand | undefined;
  /** The caller's request id, for the logs. */
  readonly requestId: string | undefined;
  readonly result: ShardResult | undefined;
  readonly changes: readonly ShardChange[];
  readonly respond: (reply: ShardReply) => void;
}

/** Why a host stopped serving. */
export type StopReason = 'handoff' | 'fenced' | 'version-conflict' | 'lease-lost' | 'commit-failed' | 'faulted' | 'closed';

/** What a commit that failed stopped the host for: how that is logged, and counted (`sentinel_engine_lease_events_total{event}`). */
const COMMIT_STOPS = {
  // The epoch moved on: another engine claimed the shard (routine, in a take-over).
  fenced: { message: 'Fenced: shard stopped', event: 'fenced' },
  // A row changed underneath with the epoch still ours: memory and Postgres disagree (VersionConflictError).
  'version-conflict': { message: 'Version conflict: shard stopped', event: 'version_conflict' },
  'commit-failed': { message: 'Commit failed: shard stopped', event: 'commit_failed' },
} as const;

export interface ShardHostOptions {
  readonly eventId: string;
  readonly shard: number;
  readonly epoch: number;
  /** The event's rules when the shard was claimed; `applyRules` follows later changes. */
  readonly rules: EventRules;
  /**
   * Whether this engine still holds the shard's lease (Redis): checked before each request
   * message is decided. A process that wakes from a pause past its lease must not answer from
   * memory another owner may have moved on from — not even a loser (see `handle`). False means
   * the lease is lost for good (the engine gives it up at once: ShardLease.holdOrLose).
   */
  readonly leaseHeld: () => boolean;
  readonly topic: string;
  readonly batchWindowMs: number;
  readonly batchMax: number;
  readonly decider: ShardDecider;
  /** Where its group commits go: the engine's `ShardCommits`, which writes them with other shards'. */
  readonly store: CommitStore;
  readonly nc: NatsConnection;
  readonly log: Logger;
  readonly metrics: EngineMetrics;
  readonly now: () => number;
  /** Called once when the host stops serving on its own (fenced, commit failure). */
  readonly onStopped: (reason: StopReason) => void;
  /** Called after a commit that wrote outbox rows. */
  readonly onOutbox: () => void;
}

/** What decisions whose commit has not ended yet changed, by how many such decisions. */
interface Unsettled {
  /** Seats they sold. */
  readonly sales: Map<SeatId, number>;
  /** Holds they ended: confirmed, released or expired. */
  readonly ends: Map<string, number>;
}

function count(counts: Map<string, number>, key: string, delta: 1 | -1): void {
  const n = (counts.get(key) ?? 0) + delta;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/** Counts what `changes` sell and end (`delta` +1 when decided, -1 when their commit ended). */
function countUnsettled(unsettled: Unsettled, changes: readonly ShardChange[], delta: 1 | -1): void {
  for (const change of changes) {
    if (change.type === 'seat' && change.state === 'sold') count(unsettled.sales, change.seat, delta);
    else if (change.type === 'hold-ended') count(unsettled.ends, change.holdId, delta);
    else if (change.type === 'reservation-created') count(unsettled.ends, change.reservation.holdId, delta);
  }
}

/**
 * Serves one shard: subscribes to its subject, lets the actor decide each command, answers
 * losers at once, and group-commits winners with the fencing check before answering them.
 */
export class ShardHost {
  private subscription: Subscription | undefined;
  private readonly committer: GroupCommitter<CommitEntry>;
  private stopped: StopReason | undefined;
  /** `fault` has begun handing the shard off. */
  private faulting = false;
  /**
   * Seats sold and holds ended by decisions whose commit has not ended yet (how many such
   * decisions: a sale the customer limit undid can be decided again before the first commit ends).
   * If the commit fails, none of it happened, and the next owner reloads the seats as available
   * and the holds as live. So a refusal names a seat as sold — which every ingress then refuses
   * without asking, for a minute — only once its sale is durable, and a refusal that says a hold
   * was confirmed or has ended is answered only once that end is (see `handle`).
   */
  private readonly unsettled: Unsettled = { sales: new Map(), ends: new Map() };

  /** The event's rules now (the limit is enforced by every commit too). */
  private rules: EventRules;

  /**
   * Winners whose commit has not ended, by idempotency scope (customer and key), with the callers
   * of replays that arrived meanwhile. A replay of a key whose first decision is still being
   * committed follows that commit's fate: the commit may yet refuse it (the event-wide customer
   * limit) and undo it, and an answer of its own would be a success that never happened.
   */
  private readonly pendingWinners = new Map<string, ((reply: ShardReply) => void)[]>();

  /** Each decision is logged (with the caller's request id) only at debug level: a sale makes thousands a second. */
  private readonly logDecisions: boolean;

  constructor(private readonly o: ShardHostOptions) {
    this.logDecisions = o.log.isLevelEnabled('debug');
    this.rules = o.rules;
    this.committer = new GroupCommitter<CommitEntry>({ windowMs: o.batchWindowMs, maxBatch: o.batchMax }, (batch) => this.commit(batch));
  }

  get key(): string {
    return `${this.o.eventId}/${this.o.shard}`;
  }

  get epoch(): number {
    return this.o.epoch;
  }

  get isServing(): boolean {
    return this.stopped === undefined;
  }

  /**
   * Follows a change of the event's rules (hold TTL, customer limit) made while the shard is
   * served: decisions from now on and every later commit use them. False when nothing changed.
   */
  applyRules(rules: EventRules): boolean {
    if (rules.holdTtlMs === this.rules.holdTtlMs && rules.customerLimit === this.rules.customerLimit) return false;
    this.o.decider.applyRules(rules);
    this.rules = { holdTtlMs: rules.holdTtlMs, customerLimit: rules.customerLimit };
    return true;
  }

  /** Starts serving: from now on requests on the shard's subject reach this host. */
  start(): void {
    // No queue group, on purpose: if a stale owner is still subscribed (paused past its lease,
    // not yet aware), both get the request and the caller takes the first answer — the live
    // owner's — instead of half the requests going to a process that cannot answer. The stale
    // owner can never answer a winner: its commit is fenced.
    this.subscription = this.o.nc.subscribe(shardSubject(this.o.eventId, this.o.shard), {
      callback: guardedCallback(this.o.log, `Shard ${this.key}`, (error, msg) => {
        if (error) this.o.log.warn({ err: error.message }, 'Shard subscription error');
        else this.handle(msg);
      }),
    });
  }

  /**
   * Persists changes the actor made on its own (holds it ended: expired when due, or at a sale's
   * close), one commit entry per hold, so that a commit carries at most `batchMax` of them, however
   * many ended at once. Until 2026-12-05 the holds a claim found due — every hold that came due
   * while the shard had no owner — or a timer ended went as one entry, so into one commit: with
   * thousands of them it outlasted the statement timeout, and the shard stopped, was claimed again
   * and failed the same way for good (ADR 0006, item 4). Each hold's changes (its seats, its pool,
   * then its `hold-ended`) stay together in one entry, so each commit ends whole holds.
   */
  persist(changes: readonly ShardChange[]): void {
    let from = 0;
    for (let i = 0; i < changes.length; i++) {
      if (changes[i]!.type !== 'hold-ended') continue;
      this.persistEntry(changes.slice(from, i + 1));
      from = i + 1;
    }
    this.persistEntry(changes.slice(from));
  }

  /** One entry of changes made by no command: committed like a winner's, answered to nobody. */
  private persistEntry(changes: readonly ShardChange[]): void {
    // Stopped (even by a commit that failed while the entries before this one were added): nothing
    // more is committed, and the committer refuses new entries.
    if (changes.length === 0 || this.stopped) return;
    countUnsettled(this.unsettled, changes, 1);
    this.committer.add({ command: undefined, requestId: undefined, result: undefined, changes, respond: () => undefined });
  }

  /** Decides every command of a request message; losers are answered together at once, winners after their commit. */
  private handle(msg: Msg): void {
    if (!msg.reply) return; // nobody to answer: a request is always a request/reply
    const replyTo = msg.reply;
    const sink = new ReplySink((data) => {
      try {
        this.o.nc.publish(replyTo, data);
      } catch (error) {
        // The connection is closing or gone: the callers time out and retry with the same keys.
        this.o.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Could not send shard replies');
      }
    }, this.o.nc.info?.max_payload);
    let requests: readonly ShardRequest[];
    try {
      requests = decodeRequests(msg.data).requests;
    } catch {
      this.o.log.warn({ subject: msg.subject }, 'Shard request is not a request batch; dropped');
      return;
    }
    // Checked once per message, before anything is decided: a process paused past its lease
    // reads the messages that waited for it before its lease timer can fire. Its memory may be
    // behind the new owner's, and even a loser answered from it would race the new owner's
    // answer to the same request (both receive it) — and could beat the sale the new owner makes.
    if (!this.stopped && !this.o.leaseHeld()) this.leaseLost();
    for (let index = 0; index < requests.length; index++) {
      const request = requests[index]!;
      if (this.stopped) {
        const state = this.stopped;
        sink.add(index, {
          result: { ok: false, type: 'not-serving', state, retryable: true, message: `shard ${this.key} is not served here (${state})` },
        });
        continue;
      }
      let decision: ReturnType<ShardDecider['decide']>;
      try {
        decision = this.o.decider.decide(request.command);
      } catch (error) {
        // A bug, not a decision: this command gets an error (not retryable: a retry would meet the
        // same bug), and the shard stops deciding (`fault`); the others of its message are
        // answered not-serving, and retried with the shard's next owner.
        this.o.log.error({ err: error, requestId: request.requestId, command: request.command?.type }, 'Deciding a command failed');
        sink.add(index, { error: { code: 'decide_failed', message: `shard ${this.key} could not decide this command`, retryable: false } });
        this.fault(error);
        continue;
      }
      const { result, changes, replayed } = decision;
      // A replay — a client's retry, answered from memory — is not a decision: counted apart, so
      // that a retried sale does not count as another one.
      if (replayed) this.o.metrics.replays.inc({ result: result.type });
      else this.o.metrics.decisions.inc({ result: result.type });
      if (this.logDecisions) {
        this.o.log.debug(
          { requestId: request.requestId, command: request.command.type, key: request.command.key, result: result.type, replayed },
          'Decided',
        );
      }
      if (!result.ok) {
        if ((result.type === 'hold-confirmed' || result.type === 'hold-expired') && this.unsettled.ends.has(result.holdId)) {
          // The hold's confirmation or end is still being committed: if that commit fails, the
          // hold is live again (and the reservation this names never existed). The refusal waits
          // for the next commit, which follows that one and proves this owner's epoch, or gets
          // the retryable error its failure gives.
          this.committer.add({
            command: request.command,
            requestId: request.requestId,
            result,
            changes: [], // a refusal writes nothing
            respond: (reply) => sink.add(index, reply),
          });
          continue;
        }
        // A loser: answered at once, nothing written, nothing waited for.
        sink.add(index, { result: result.type === 'unavailable' ? this.settledOnly(result) : result });
        continue;
      }
      // A winner's replay says so (the ingress's Idempotent-Replayed), whichever reply it joins.
      const respond = replayed
        ? (reply: ShardReply) => sink.add(index, 'result' in reply ? { ...reply, replayed: true } : reply)
        : (reply: ShardReply) => sink.add(index, reply);
      const scope = idempotencyScope(request.command.customer, request.command.key);
      if (changes.length === 0) {
        // The replay of a winner: while the first is being committed, it gets the first's answer;
        // after, it waits for a commit of its own (which proves this owner still holds the epoch).
        const followers = this.pendingWinners.get(scope);
        if (followers !== undefined) {
          followers.push(respond);
          continue;
        }
        this.committer.add({ command: request.command, requestId: request.requestId, result, changes, respond });
        continue;
      }
      countUnsettled(this.unsettled, changes, 1);
      // The callers of this decision: a replay that comes before its commit ends joins them. (A
      // later decision of the same key — after the commit refused this one — has callers of its own.)
      const callers = [respond];
      this.pendingWinners.set(scope, callers);
      this.committer.add({
        command: request.command,
        requestId: request.requestId,
        result,
        changes,
        respond: (reply) => {
          if (this.pendingWinners.get(scope) === callers) this.pendingWinners.delete(scope);
          for (const caller of callers) caller(reply);
        },
      });
    }
    sink.flush();
  }

  /**
   * A refusal that names as sold only the seats whose sale has committed (with their buyers,
   * aligned), and as `pending` those whose commit is under way: their announcement follows it.
   */
  private settledOnly(result: Extract<ShardResult, { type: 'unavailable' }>): ShardResult {
    const { sold, soldTo } = result;
    if (sold === undefined || this.unsettled.sales.size === 0) return result;
    const settled: SeatId[] = [];
    const settledTo: CustomerId[] = [];
    const pending: SeatId[] = [];
    sold.forEach((seat, i) => {
      if (this.unsettled.sales.has(seat)) {
        pending.push(seat);
        return;
      }
      settled.push(seat);
      if (soldTo !== undefined) settledTo.push(soldTo[i]!);
    });
    if (pending.length === 0) return result;
    return { ...seatsUnavailable(result.seats, settled, soldTo === undefined ? undefined : settledTo), pending };
  }

  private async commit(batch: CommitEntry[]): Promise<void> {
    try {
      await this.commitOnce(batch);
    } finally {
      // Committed (the seats are sold for good) or not (the host stopped serving): unsettled no longer.
      for (const entry of batch) countUnsettled(this.unsettled, entry.changes, -1);
    }
  }

  private async commitOnce(batch: CommitEntry[]): Promise<void> {
    if (this.stopped) {
      for (const entry of batch)
        entry.respond({ error: { code: 'not_serving', message: `shard ${this.key} stopped (${this.stopped})`, retryable: true } });
      return;
    }
    const started = performance.now();
    const now = this.o.now();
    let accepted = batch;
    let wroteOutbox = false;
    let sold: ReservationView[] = [];
    // Limit refusals are answered only once the rest of the batch committed.
    const refusals: { entry: CommitEntry; result: ShardResult }[] = [];
    try {
      let write = emptyBatchWrite();
      for (const entry of batch) foldChanges(write, entry.changes, now);
      // The pools as the whole batch moved them, and the places of refused holds to take out of them.
      const batchPools = write.pools;
      const refusedPlaces = new Map<string, number>();
      for (;;) {
        const limit = this.rules.customerLimit;
        const { refused } = await this.o.store.commitBatch(this.o.eventId, this.o.shard, this.o.epoch, limit, write, this.o.topic);
        if (refused.size === 0) break;
        // The event-wide limit (other shards' holds count too) refused these customers' growth and
        // nothing was written: undo the holds that do not fit in memory, answer limit-exceeded,
        // and commit the rest again (until nothing is refused: each round takes at least one
        // entry out).
        const { refusedEntries, rest, usageAfter } = overLimit(accepted, refused, limit);
        if (refusedEntries.length === 0) {
          throw new SentinelError(
            'rebuild_required',
            `the customer limit refused ${[...refused.keys()].join(', ')} but no hold of theirs is in the batch`,
            {
              retryable: true,
            },
          );
        }
        accepted = rest;
        // Undo newest first. A pool hold's places also come out of the counters that decisions made
        // since — waiting for the next commit — recorded (`withoutHeldPlaces`): until 2026-12-03
        // such a hold could not be undone, and every limit refusal on a busy pool rebuilt the shard.
        // (Every such decision is in that list: `handle` decides and adds to the committer in one
        // synchronous step.) If one cannot be undone (confirmed or ended since, or beyond the
        // abort window), memory is unlike anything this batch could write: write nothing, and
        // rebuild the shard from Postgres (the catch below answers everyone retryably).
        for (const { entry, hold } of refusedEntries.reverse()) {
          const { holdId, customer } = hold;
          const poolWrite = hold.pool === undefined ? undefined : batchPools.get(hold.pool);
          if (hold.pool !== undefined) refusedPlaces.set(hold.pool, (refusedPlaces.get(hold.pool) ?? 0) + hold.quantity);
          const undone = this.o.decider.abort(holdId, poolWrite?.toVersion, true);
          if (undone && hold.pool !== undefined) {
            const { pool, quantity } = hold;
            this.committer.update((later) => ({ ...later, changes: withoutHeldPlaces(later.changes, pool, quantity) }));
          }
          if (!undone) {
            throw new SentinelError('rebuild_required', `a refused hold (${holdId}) could not be undone in memory; rebuilding the shard`, {
              retryable: true,
            });
          }
          const requested = entry.changes.reduce((n, c) => (c.type === 'hold-created' ? n + c.hold.quantity : n), 0);
          refusals.push({
            entry,
            result: {
              ok: false,
              type: 'limit-exceeded',
              limit,
              current: usageAfter.get(customer) ?? 0,
              requested,
              message: `customer ${customer} would exceed the event's limit of ${limit}`,
            },
          });
        }
        // Pools are written from the batch's own records, less the refused places: a decision of
        // the batch made after a refused pool hold recorded counters that still counted it
        // (retries of both, arriving together, make that the common case).
        write = emptyBatchWrite();
        for (const entry of accepted) foldChanges(write, entry.changes, now);
        for (const [pool, places] of refusedPlaces) {
          const recorded = batchPools.get(pool);
          if (recorded !== undefined) write.pools.set(pool, { ...recorded, held: recorded.held - places });
        }
      }
      wroteOutbox = write.reservations.length > 0;
      sold = write.reservations.filter((r) => r.seats.length > 0);
    } catch (error) {
      // A version conflict is a FencedError, and stops the shard as a fence does; told apart first.
      const reason = error instanceof VersionConflictError ? 'version-conflict' : error instanceof FencedError ? 'fenced' : 'commit-failed';
      this.o.log.warn(
        {
          err: error instanceof Error ? error.message : String(error),
          epoch: this.o.epoch,
          batch: batch.length,
          // The callers who get a retryable error for this: their ids find them in the ingress logs.
          requestIds: batch.flatMap((entry) => (entry.requestId === undefined ? [] : [entry.requestId])).slice(0, 50),
        },
        COMMIT_STOPS[reason].message,
      );
      this.o.metrics.leaseEvents.inc({ event: COMMIT_STOPS[reason].event });
      const code = error instanceof SentinelError ? error.code : 'commit_failed';
      // Memory now disagrees with the database (or another owner exists): stop, answer every
      // waiting caller with a retryable error, and let the shard be rebuilt from Postgres.
      this.stopServing(reason);
      for (const entry of batch) entry.respond({ error: { code, message: `shard ${this.key}: ${reason}`, retryable: true } });
      for (const entry of this.committer.close())
        entry.respond({ error: { code, message: `shard ${this.key}: ${reason}`, retryable: true } });
      this.o.onStopped(reason);
      return;
    }
    this.o.metrics.batchSize.observe(batch.length);
    this.o.metrics.commitSeconds.observe((performance.now() - started) / 1000);
    for (const entry of accepted) if (entry.result) entry.respond({ result: entry.result });
    for (const { entry, result } of refusals) {
      if (this.logDecisions) this.o.log.debug({ requestId: entry.requestId, result: result.type }, 'Refused at commit');
      entry.respond({ result });
    }
    if (wroteOutbox) this.o.onOutbox();
    if (sold.length > 0) this.announce(sold);
  }

  /**
   * Tells every ingress which seats this commit sold, and to whom: each refuses their later buyers
   * itself, not only the replica the sale went through (SoldSeats; ADR 0008, decision 16). Best
   * effort: an ingress that misses it asks the shard, as before. In as many messages as the
   * server's largest takes (`sendWithin`): a commit that sold more seats than fit in one was
   * refused whole by the client (MaxPayloadExceeded) and announced nothing — the biggest commits,
   * whose losers matter most. Each message names whole seats with their buyers, and stands alone.
   */
  private announce(sold: readonly ReservationView[]): void {
    const sales: (readonly [SeatId, CustomerId])[] = [];
    for (const reservation of sold) for (const seat of reservation.seats) sales.push([seat, reservation.customer]);
    const subject = salesSubject(this.o.eventId);
    sendWithin(
      sales,
      (part) => encode({ seats: part.map(([seat]) => seat), buyers: part.map(([, buyer]) => buyer) }),
      this.o.nc.info?.max_payload,
      (data, from, to) => {
        try {
          this.o.nc.publish(subject, data);
        } catch (error) {
          this.o.log.warn({ err: error instanceof Error ? error.message : String(error), seats: to - from }, 'Could not announce sales');
        }
      },
    );
  }

  private stopServing(reason: StopReason): void {
    if (this.stopped) return;
    this.stopped = reason;
    this.unsettled.sales.clear(); // nothing is answered from here on
    this.unsettled.ends.clear();
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    if (reason === 'handoff' || reason === 'closed') this.o.decider.drain();
    else this.o.decider.fence(reason);
  }

  /**
   * A decision or an expiry threw: a bug, and memory may be half changed. The shard decides nothing
   * more; what it decided before commits (those changes were complete), then it stops and is given
   * up, to be rebuilt from Postgres — by this engine on a later round, or by another. Better than
   * the alternative the actor would otherwise take: the whole process ended, every shard with it.
   */
  fault(error: unknown): void {
    if (this.stopped || this.faulting) return;
    this.faulting = true;
    this.o.log.error({ err: error instanceof Error ? error.message : String(error) }, 'Shard faulted: stops deciding, to be rebuilt');
    this.o.metrics.leaseEvents.inc({ event: 'faulted' });
    void this.handOff('faulted')
      .catch(() => undefined) // a failed commit stops the shard on its own path
      .then(() => this.o.onStopped('faulted'));
  }

  /** Immediately stops taking work after a lost lease; in-flight commits are fenced by epoch anyway. */
  leaseLost(): void {
    if (this.stopped) return;
    this.stopServing('lease-lost');
    for (const entry of this.committer.close())
      entry.respond({ error: { code: 'lease_lost', message: `shard ${this.key}: lease lost`, retryable: true } });
    this.o.decider.stop();
  }

  /**
   * Graceful hand-off: stop taking, flush what was decided, then stop the actor. When the sale
   * closed, the shard's live holds end with it, once what was decided before has committed (a
   * limit refusal there must still be able to undo its hold): they can no longer be confirmed,
   * and the event's final counts should show their seats free. Holds that do not end here — a
   * commit failed, the shard faulted, or ending them threw — stay live in Postgres for
   * `Engine.settleOver`.
   * Returns how the shard stopped: `reason`, or what stopped it first (`commit-failed`, …).
   */
  async handOff(reason: 'handoff' | 'closed' | 'faulted' = 'handoff'): Promise<StopReason> {
    if (!this.stopped) {
      this.subscription?.unsubscribe();
      this.subscription = undefined;
      this.o.decider.drain();
      await this.committer.flush();
      if (reason === 'closed' && !this.stopped && !this.faulting) {
        if (this.endLiveHolds()) await this.committer.flush();
        else this.stopped = 'faulted';
      }
      this.stopped ??= reason;
    }
    this.committer.close();
    this.o.decider.stop();
    return this.stopped;
  }

  /**
   * Ends every live hold, one commit entry per hold (`persist`), so a commit carries no more than
   * `batchMax` of them; false if that threw (a bug: nothing of it is persisted).
   */
  private endLiveHolds(): boolean {
    let changes: readonly ShardChange[];
    try {
      changes = this.o.decider.expireAll();
    } catch (error) {
      this.o.log.error({ err: error instanceof Error ? error.message : String(error) }, 'Could not end the live holds of a closed sale');
      return false;
    }
    this.persist(changes);
    return true;
  }
}
