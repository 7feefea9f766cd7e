/**
 * `verify`: holds one event to the invariants of the architecture, over Postgres, the Kafka topic
 * and any stress response logs — and says which held and which did not.
 */
import type pg from 'pg';
import type { Logger } from '../../log.js';
import { readResponseLog } from '../stress/response-log.js';
import { AckLedger, checkAcknowledged, type LedgerCounts } from './ack-ledger.js';
import { checkInventory, eventFacts, openSnapshot, settleOutbox, type InventoryCounts } from './inventory-checks.js';
import { checkTopic, readEventFromTopic, type TopicCounts } from './topic.js';
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
  /** How long to wait for the outbox to drain before reading the topic, ms. */
  readonly settleTimeoutMs: number;
  /** How long reading the topic may take, ms. */
  readonly topicTimeoutMs: number;
  readonly log: Logger;
  /** Progress notes ("waiting for the outbox: 120 rows"). */
  readonly onStatus?: (message: string) => void;
}

/** The verdict, as `--json` prints it. */
export interface VerifyReport {
  readonly ok: boolean;
  readonly event: string;
  readonly violations: readonly Violation[];
  readonly counts: {
    readonly inventory: InventoryCounts;
    readonly topic: (TopicCounts & { readonly too_recent: number }) | null;
    readonly log: LedgerCounts | null;
    readonly violations: number;
  };
  readonly checks: readonly {
    readonly check: CheckName;
    readonly invariant: number;
    readonly description: string;
    readonly violations: number;
    readonly skipped: boolean;
  }[];
  readonly duration_s: number;
}

/** The event does not exist: nothing to verify (exit 2, not a violation). */
export class UnknownEventError extends Error {
  constructor(eventId: string) {
    super(`no event ${eventId} in the database`);
  }
}

export async function verifyEvent(options: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now();
  const event = await eventFacts(options.pool, options.eventId);
  if (event === undefined) throw new UnknownEventError(options.eventId);
  const violations = new Violations();
  const skipped = new Set<CheckName>();

  let ledger: AckLedger | undefined;
  if (options.logs.length > 0) {
    ledger = new AckLedger(event.id);
    for (const path of options.logs) {
      options.onStatus?.(`reading ${path}`);
      for await (const record of readResponseLog(path)) ledger.add(record);
    }
    ledger.checkClientView(violations);
  } else {
    skipped.add('ack-missing');
    skipped.add('client-double-sale');
  }

  // The topic first: the relay drains the outbox, then the topic is read to its end.
  let topic: TopicCounts | null = null;
  let read: { messages: Awaited<ReturnType<typeof readEventFromTopic>>['messages']; unpublished: number; settledAt: number } | undefined;
  if (options.kafka) {
    const unpublished = await settleOutbox(options.pool, event.id, options.settleTimeoutMs, (n) =>
      options.onStatus?.(`waiting for the relay to publish ${n} outbox rows`),
    );
    const settledAt = Date.now();
    options.onStatus?.(`reading ${options.kafka.topic}`);
    try {
      const result = await readEventFromTopic({
        brokers: options.kafka.brokers,
        topic: options.kafka.topic,
        eventId: event.id,
        since: event.createdAt,
        timeoutMs: options.topicTimeoutMs,
        log: options.log,
      });
      topic = result.counts;
      read = { messages: result.messages, unpublished, settledAt };
    } catch (error) {
      violations.add(
        'topic-missing',
        `could not read the topic ${options.kafka.topic}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  } else {
    skipped.add('topic-missing');
    skipped.add('topic-unknown');
  }

  // Then every database check, on one consistent snapshot taken after the topic was read.
  options.onStatus?.('checking the inventory');
  const snapshot = await openSnapshot(options.pool);
  let inventory: InventoryCounts;
  let tooRecent = 0;
  try {
    if (ledger) await checkAcknowledged(snapshot, event.id, ledger, violations);
    if (read) ({ tooRecent } = await checkTopic(snapshot, event.id, read.messages, read, violations));
    inventory = await checkInventory(snapshot, event, violations, options.ttlSlackMs);
  } finally {
    await snapshot.close();
  }

  return {
    ok: violations.total === 0,
    event: event.id,
    violations: violations.list(),
    counts: { inventory, topic: topic && { ...topic, too_recent: tooRecent }, log: ledger?.counts() ?? null, violations: violations.total },
    checks: (Object.keys(CHECKS) as CheckName[]).map((check) => ({
      check,
      invariant: CHECKS[check].invariant,
      description: CHECKS[check].description,
      violations: violations.count(check),
      skipped: skipped.has(check),
    })),
    duration_s: (Date.now() - started) / 1000,
  };
}
