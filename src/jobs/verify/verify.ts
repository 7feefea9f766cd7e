/**
 * `verify`: holds one event to the invariants of the architecture, over Postgres, the Kafka topic
 * and any stress response logs — and says which held and which did not.
 */
import type pg from 'pg';
import type { Logger } from '../../log.js';
import { UnknownEventError } from '../options.js';
import { AckLedger, checkAcknowledged, type LedgerCounts } from './ack-ledger.js';
import { checkInventory, eventFacts, openSnapshot, type InventoryCounts } from './inventory-checks.js';
import { replayResponseLogs } from './log-replay.js';
import {
  checkTopic,
  otherTopicsNote,
  publishedKeys,
  readEventFromTopic,
  recheckTopic,
  settleOutbox,
  type TopicCounts,
  type TopicRead,
  type TopicReservation,
} from './topic.js';
import { CHECKS, Violations, type CheckName, type Violation } from './violations.js';

export interface VerifyOptions {
  readonly eventId: string;
  readonly pool: pg.Pool;
  /** Stress response logs (JSONL) to replay. */
  readonly logs: readonly string[];
  /** Where confirmed reservations are published; undefined skips the topic checks. */
  readonly kafka: { readonly brokers: readonly string[]; readonly topic: string } | undefined;
  /** How far past its TTL a hold may still be live (timer granularity, commit window, clock skew), ms. */
  readonly ttlSlackMs: number;
  /**
   * How long to wait for the relay to publish the event's outbox before reading the topic, ms; and
   * again, for reservations whose rows were not published yet when it was read.
   */
  readonly settleTimeoutMs: number;
  /** How long reading the topic may take, ms. */
  readonly topicTimeoutMs: number;
  /**
   * The shards of an event whose lease an engine holds now (`heldShardLeases`, Redis). A live hold
   * past its TTL is judged only on those: a shard whose engine was killed without handing it off
   * still names that engine in Postgres. Without it, the owner named in Postgres is believed; when
   * it fails, no such hold is judged.
   */
  readonly leases?: (eventId: string, shardCount: number) => Promise<ReadonlySet<number>>;
  readonly log: Logger;
  /** Progress notes ("waiting for the outbox: 120 rows"). */
  readonly onStatus?: (message: string) => void;
}

/**
 * The verdict, as `--json` prints it. `ok` only when every check that was asked for was made and
 * found nothing: a check that could not be made (`not_checked`) is not a pass.
 */
export interface VerifyReport {
  readonly ok: boolean;
  readonly event: string;
  readonly violations: readonly Violation[];
  /**
   * Why checks that were asked for could not be made, or not completely (an empty response log, a
   * line that is not a response record, an unreadable topic, holds past their TTL on unserved shards).
   */
  readonly not_checked: readonly string[];
  readonly counts: {
    readonly inventory: InventoryCounts;
    /** `rechecked`: reservations not yet published when the topic was read, checked after waiting for the relay. */
    readonly topic: (TopicCounts & { readonly rechecked: number }) | null;
    readonly log: LedgerCounts | null;
    readonly violations: number;
  };
  readonly checks: readonly {
    readonly check: CheckName;
    readonly invariant: number;
    readonly description: string;
    readonly violations: number;
    /** Not asked for (no response log, `--no-topic`). */
    readonly skipped: boolean;
    /** Asked for, but could not be made (see `not_checked`). */
    readonly unchecked: boolean;
  }[];
  readonly duration_s: number;
}

/** `sentinel verify`'s exit codes. */
export const EXIT = { ok: 0, violations: 1, usage: 2, notChecked: 3 } as const;

/** 1 on any violation; else 3 when some check could not be made; else 0. */
export function verifyExitCode(report: VerifyReport): number {
  if (report.counts.violations > 0) return EXIT.violations;
  return report.not_checked.length > 0 ? EXIT.notChecked : EXIT.ok;
}

/** The event does not exist: nothing to verify (exit 2, not a violation). Shared with stress and chaos. */
export { UnknownEventError };

/**
 * The engines' retention deleted some of the event's idempotency keys or published outbox rows
 * (ADR 0006, item 11): the checks that read them would report their absence as violations — an
 * outbox row missing, a seat held twice by a hold whose release record is gone — so the event is
 * not judged at all (exit 3). Verify a sale within the windows.
 */
export class PrunedEventError extends Error {
  constructor(eventId: string, prunedAt: Date) {
    super(
      `event ${eventId} can no longer be verified: the engines' retention has deleted some of its records (expired ` +
        `idempotency keys or old published outbox rows; last at ${prunedAt.toISOString()}, and for good). Verify a sale ` +
        `within SENTINEL_IDEMPOTENCY_TTL_S (a day by default) of its commands and SENTINEL_OUTBOX_RETENTION_S (a week) of their publication`,
    );
    this.name = 'PrunedEventError';
  }
}

/**
 * Why live holds past their TTL on shards no engine serves leave invariant 3 unjudged: the shard's
 * next owner expires them when it claims the shard, before any decision — or, once the sale is
 * over, an engine settling it ends them (ADR 0006, item 10) — so they harm no one yet; but whether
 * they will be expired, or were left live while an engine served them, verify cannot see (ADR 0007).
 */
const unservedExpiry = (n: number) =>
  `${n === 1 ? '1 hold past its' : `${n} holds past their`} TTL on shards no engine serves: expiry cannot be judged until an engine owns them`;

export async function verifyEvent(options: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now();
  const event = await eventFacts(options.pool, options.eventId);
  if (event === undefined) throw new UnknownEventError(options.eventId);
  if (event.prunedAt !== undefined) throw new PrunedEventError(event.id, event.prunedAt);
  const violations = new Violations();
  const skipped = new Set<CheckName>();
  /** Checks that were asked for but could not be made (or not completely), and why. */
  const unchecked = new Map<CheckName, string[]>();
  const cannotCheck = (checks: readonly CheckName[], ...why: string[]) =>
    checks.forEach((check) => unchecked.set(check, [...(unchecked.get(check) ?? []), ...why]));
  const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

  let ledger: AckLedger | undefined;
  if (options.logs.length > 0) {
    ledger = new AckLedger(event.id);
    const incomplete = await replayResponseLogs(options.logs, ledger, options.onStatus);
    if (incomplete.length > 0) cannotCheck(['ack-missing', 'client-double-sale', 'refusal-untrue'], ...incomplete);
    const unjudged = ledger.refusalsUnjudged();
    if (unjudged !== undefined) cannotCheck(['refusal-untrue'], unjudged);
    // What was read is checked even so: more lines cannot make a wrong answer right.
    ledger.checkClientView(violations);
  } else {
    skipped.add('ack-missing');
    skipped.add('client-double-sale');
    skipped.add('refusal-untrue');
  }

  // The topic first: the relay drains the outbox, verify notes which rows are published, then
  // reads the topic to its end (see topic.ts for why that order decides what must be on it).
  let read: { topic: TopicRead; published: Set<string> } | undefined;
  const topicOptions = options.kafka && {
    brokers: options.kafka.brokers,
    topic: options.kafka.topic,
    eventId: event.id,
    since: event.createdAt,
    timeoutMs: options.topicTimeoutMs,
    log: options.log,
  };
  const onWait = (n: number) => options.onStatus?.(`waiting for the relay to publish ${n} outbox rows`);
  if (topicOptions) {
    await settleOutbox(options.pool, event.id, topicOptions.topic, options.settleTimeoutMs, onWait);
    const published = await publishedKeys(options.pool, event.id, topicOptions.topic);
    options.onStatus?.(`reading ${topicOptions.topic}`);
    try {
      read = { topic: await readEventFromTopic(topicOptions), published };
    } catch (error) {
      cannotCheck(['topic-missing', 'topic-unknown'], `could not read the topic ${topicOptions.topic}: ${errorText(error)}`);
    }
  } else {
    skipped.add('topic-missing');
    skipped.add('topic-unknown');
  }

  // Which shards an engine serves, read just before the snapshot: a shard claimed in between counts
  // as unserved (not judged), never the other way round.
  let served: ReadonlySet<number> | undefined;
  if (options.leases) {
    try {
      served = await options.leases(event.id, event.shardCount);
    } catch (error) {
      served = new Set();
      cannotCheck(['hold-past-ttl'], `could not read the shard leases (${errorText(error)}): no hold past its TTL was judged`);
    }
  }

  // Then every database check, on one consistent snapshot taken after the topic was read.
  options.onStatus?.('checking the inventory');
  const snapshot = await openSnapshot(options.pool);
  let inventory: InventoryCounts;
  let pending: TopicReservation[] = [];
  try {
    // Again in the snapshot: the engines' retention may have deleted records since the first look
    // (the topic is read in between), and the checks below read what the snapshot holds.
    const pruned = await snapshot.query<{ pruned_at: Date | null }>('SELECT pruned_at FROM events WHERE id = $1', [event.id]);
    const prunedAt = pruned.rows[0]?.pruned_at;
    if (prunedAt) throw new PrunedEventError(event.id, prunedAt);
    if (ledger) await checkAcknowledged(snapshot, event.id, ledger, violations, options.ttlSlackMs);
    if (read && topicOptions) {
      const topic = await checkTopic(snapshot, event.id, topicOptions.topic, read.topic, read.published, violations);
      pending = topic.pending;
      const elsewhere = otherTopicsNote(topicOptions.topic, topic.otherTopics);
      if (elsewhere !== undefined) cannotCheck(['topic-missing'], elsewhere);
    }
    inventory = await checkInventory(snapshot, event, violations, options.ttlSlackMs, served);
  } finally {
    await snapshot.close();
  }
  if (inventory.pending_expiry > 0) cannotCheck(['hold-past-ttl'], unservedExpiry(inventory.pending_expiry));

  // Reservations whose rows were not published when the topic was read: wait for the relay, read on.
  if (read && topicOptions && pending.length > 0) {
    options.onStatus?.(`${pending.length} reservations were not published yet when the topic was read: waiting for the relay`);
    try {
      await recheckTopic(
        { pool: options.pool, eventId: event.id, pending, settleTimeoutMs: options.settleTimeoutMs, onWait, topic: topicOptions },
        read.topic,
        violations,
      );
    } catch (error) {
      cannotCheck(['topic-missing'], `could not read the topic ${topicOptions.topic} again: ${errorText(error)}`);
    }
  }

  return {
    ok: violations.total === 0 && unchecked.size === 0,
    event: event.id,
    violations: violations.list(),
    not_checked: [...new Set([...unchecked.values()].flat())],
    counts: {
      inventory,
      topic: read ? { ...read.topic.counts(), rechecked: pending.length } : null,
      log: ledger?.counts() ?? null,
      violations: violations.total,
    },
    checks: (Object.keys(CHECKS) as CheckName[]).map((check) => ({
      check,
      invariant: CHECKS[check].invariant,
      description: CHECKS[check].description,
      violations: violations.count(check),
      skipped: skipped.has(check),
      unchecked: unchecked.has(check),
    })),
    duration_s: (Date.now() - started) / 1000,
  };
}
