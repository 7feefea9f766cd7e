import type pg from 'pg';
import type { Producer, RecordMetadata } from 'kafkajs';
import type { Logger } from '../log.js';
import { defaultPartition } from '../adapters/kafka/client.js';
import { checkout } from '../adapters/postgres/pool.js';
import { withDeadline } from '../deadline.js';

/** How much longer than a send Postgres lets the claim's transaction sit idle before it ends it (ms). */
const IDLE_MARGIN_MS = 15_000;

/** Settings of the relay loop. */
export interface OutboxRelayOptions {
  /** Most rows published per round. */
  readonly batchSize: number;
  /**
   * Sleep after a round that published rows and left none it could have taken (its claim was not
   * full, and all of it fitted in one send) (ms): commits landing meanwhile go out together in the
   * next round, so during a sale rounds run at most this often. Nothing cuts it short.
   */
  readonly pauseMs: number;
  /**
   * Sleep after a round that found nothing (ms). This engine's own commits wake it at once; the
   * sleep bounds how long rows that nobody announced wait: another engine's, or a crashed one's.
   */
  readonly idleMs: number;
  /** Longest backoff while Kafka or Postgres is down (ms). */
  readonly maxBackoffMs: number;
  /** Longest a send may take before the round gives up on it (ms; SEND_DEADLINE_MS by default). */
  readonly sendDeadlineMs?: number;
  /** How long a row Kafka refused for a fault of its own waits before it is tried again (ms; DEFER_MS by default). */
  readonly deferMs?: number;
}

/**
 * Longest a send may take (ms). kafkajs retries a request for up to a minute with the client's
 * settings (`createKafka`), and the round's rows stay locked meanwhile. A send given up on ends its
 * producer session like any failed send; it may still land, and then goes twice (deduped by key).
 */
export const SEND_DEADLINE_MS = 30_000;

/**
 * Most bytes of messages in one send (one row alone may be more). A broker refuses a record batch
 * over its `message.max.bytes` (1 MB by default), and a batch refused for its size would be claimed
 * and refused again round after round, stalling the topic: block bookings of thousands of seats make
 * payloads of tens or hundreds of kB. One row alone is within that default: the largest reservation
 * Sentinel makes (10,000 seats, `maxSeatsPerRequest`, of ids of at most 39 characters) is under
 * 0.5 MB. A broker configured with a smaller limit than a row needs refuses that row: it is
 * deferred (ROW_FAULTS), and the rows after it go on.
 */
export const MAX_SEND_BYTES = 512 * 1024;

/**
 * Kafka's refusals of a record for a fault of its own, whatever the state of the broker: too large
 * for the topic (`max.message.bytes`) or its segments, or refused by the broker's validation. A row
 * sent alone and refused so is deferred for `deferMs` (migration 0016) instead of being claimed
 * again at once: the rows after it are published meanwhile. Every other failure (Kafka down, the
 * topic not writable, a timeout) holds the whole topic back and is retried with backoff: deferring
 * rows one by one for it would only walk the stall through the outbox.
 */
const ROW_FAULTS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD']);

/** How long a row Kafka refused for a fault of its own waits before it is tried again (ms). */
export const DEFER_MS = 60_000;

/** Rows deferred with no send succeeding in between before each further deferral backs off (see claimAndPublish). */
export const MAX_DEFERRED_IN_A_ROW = 3;

export const DEFAULT_RELAY_OPTIONS: OutboxRelayOptions = { batchSize: 500, pauseMs: 50, idleMs: 500, maxBackoffMs: 5000 };

/**
 * The relay's reads of its topic's unpublished rows (exported for the test that holds them to the
 * index by topic, migration 0009): whether there is any ($1 the topic), and a batch claimed oldest
 * first ($1 the batch size, $2 the topic).
 */
export const RELAY_QUERIES = {
  pending: `SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND topic = $1
              AND (deferred_until IS NULL OR deferred_until <= now())) AS pending`,
  claim: `SELECT id, message_key, payload FROM outbox
           WHERE published_at IS NULL AND topic = $2 AND (deferred_until IS NULL OR deferred_until <= now())
           ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
} as const;

/** Unpublished outbox rows of one topic. */
export interface OutboxBacklog {
  readonly topic: string;
  readonly rows: number;
  /** Age of the oldest unpublished row (s). */
  readonly oldestSeconds: number;
}

interface OutboxRow {
  id: string;
  message_key: string;
  payload: unknown;
}

/** The type of Kafka's refusal in an error or its causes (kafkajs wraps a protocol error that is not retried), if any. */
function kafkaErrorType(error: unknown): string | undefined {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string') return type;
  }
  return undefined;
}

/** What the relay uses of a Kafka producer session (`openProducerSession`). */
export type RelayProducer = Pick<Producer, 'send' | 'disconnect'> & {
  /**
   * How many partitions the relay's topic had when the session opened: the relay places every
   * message itself, among these (kafkajs's default placement, `defaultPartition`). Kafka never
   * removes a partition from a topic, so the count stays valid for the session's life; a partition
   * added meanwhile is only used from the next session on.
   */
  readonly partitions: number;
};

/**
 * A send that kafkajs resolved without an acknowledgement for every partition it was given
 * messages for: the messages of `missing` may never have been written (see `unacknowledged`).
 */
export class IncompleteAcknowledgementError extends Error {
  constructor(
    readonly topic: string,
    readonly missing: readonly number[],
    readonly targeted: readonly number[],
  ) {
    super(
      `Kafka send to ${topic} resolved without an acknowledgement for partition(s) ${missing.join(', ')} ` +
        `(sent to ${targeted.join(', ')}): treated as failed`,
    );
    this.name = 'IncompleteAcknowledgementError';
  }
}

/**
 * The partitions of `targeted` that `acks` (what `send` resolved with) does not acknowledge
 * (errorCode 0 for `topic`), in order.
 *
 * A resolved `send` of kafkajs 2.2.4 does not prove every message was written
 * (`producer/sendMessages.js`; tulios/kafkajs#1798): it keeps each broker's answer across its
 * retries, keyed by the broker, and on a retry sends only to brokers that have not answered yet —
 * so messages of a partition whose leader failed (NOT_LEADER_FOR_PARTITION, a connection closed by
 * a rolling restart) and moved to a broker that had already answered are never sent, and the send
 * resolves with the other partitions' metadata alone. Its metadata also silently drops a partition
 * it does not know (`cluster.findLeaderForPartitions`). The answer names each partition written.
 */
export function unacknowledged(topic: string, targeted: Iterable<number>, acks: readonly RecordMetadata[] | undefined): number[] {
  const acknowledged = new Set<number>();
  for (const ack of acks ?? []) if (ack.topicName === topic && ack.errorCode === 0) acknowledged.add(ack.partition);
  return [...new Set(targeted)].filter((p) => !acknowledged.has(p)).sort((a, b) => a - b);
}

/** What a relay needs: where the rows are, where they go. */
export interface OutboxRelayDeps {
  readonly pool: pg.Pool;
  /**
   * Opens a producer session: an idempotent producer, connected, with a producer id of its own
   * (and the topic created). Called for the first round and again after every failed send: the
   * relay never sends with a session whose send failed (see `publishOnce`).
   */
  readonly connect: () => Promise<RelayProducer>;
  /**
   * The topic this relay publishes: it claims only rows written for it. A row meant for another
   * topic — one another deployment relays, or one that no longer exists — is not its business,
   * and cannot stall its rows behind a send that always fails.
   */
  readonly topic: string;
  readonly log: Logger;
  readonly options?: OutboxRelayOptions;
  readonly onPublished?: (count: number) => void;
  /** A send kafkajs resolved without acknowledging every partition it went to (it failed: see `unacknowledged`). */
  readonly onIncompleteAck?: () => void;
}

/**
 * Publishes committed outbox rows to Kafka and marks them published.
 *
 * Each round claims a batch of its topic's rows with `FOR UPDATE SKIP LOCKED` inside a
 * transaction, sends it with the idempotent producer (key = reservation id) and marks it
 * published before committing, so several relays never publish one row twice while all is well.
 * Delivery is at-least-once when something fails between the send and the commit (relay crash,
 * Postgres lost at that moment): the row is still unpublished and goes again; consumers dedupe by
 * key. While Kafka is down the transaction rolls back, the rows stay, and the relay backs off
 * exponentially.
 *
 * Every message is given its partition here (kafkajs's default placement for its key, among the
 * partitions the session learned when it opened), and a send counts as done only if its answer
 * acknowledges each partition it went to: kafkajs can resolve a send that left a partition's
 * messages unsent (`unacknowledged`). One that did not is a failed send.
 *
 * A send that failed ends its producer session; the next round opens a new one (ADR 0006, item
 * 8). The broker dedupes an idempotent producer's batches by their sequence numbers alone, and
 * after a failed send the producer's numbers no longer match what the broker appended: the broker
 * may have appended the batch anyway (a request that timed out), and kafkajs rewinds the numbers of
 * every partition of a request that failed for one of them. The rows go again in the next round,
 * in batches made afresh — and a batch that reuses the numbers of one the broker already has is
 * acknowledged as its duplicate without being written. A new session (a new producer id) numbers
 * from zero; what the failed send did append is published twice, which consumers dedupe.
 */
export class OutboxRelay {
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  published = 0;
  private readonly options: OutboxRelayOptions;
  /** The producer session of the next round; none before the first round and after a failed send. */
  private producer: RelayProducer | undefined;
  /** Whether a commit announced rows since the current round began. */
  private nudged = false;
  /** Whether the last round found nothing: the next one looks before it opens a transaction. */
  private idle = false;
  /**
   * Rows claimed per round: `batchSize`, halved after each failed send (down to one row: a batch
   * the broker refuses for a reason of its rows' — their size — is split until the row at fault
   * goes alone, and the rows before it are published; alone, it is deferred: ROW_FAULTS), doubled
   * again after each success.
   */
  private claimLimit: number;
  /**
   * Whether the last round left rows it could have taken (its claim was full, the byte cap cut it,
   * or Kafka refused it for a row's fault: ROW_FAULTS): the next goes at once.
   */
  private more = false;
  /** Rows deferred since the last send that succeeded. */
  private deferredInARow = 0;

  constructor(private readonly deps: OutboxRelayDeps) {
    this.options = deps.options ?? DEFAULT_RELAY_OPTIONS;
    this.claimLimit = this.options.batchSize;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Nudges the relay (called after a commit that wrote outbox rows): a sleeping relay wakes; one in
   * a round that finds nothing goes again at once instead of sleeping `idleMs` (the rows may have
   * committed after its read).
   */
  notify(): void {
    this.nudged = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.endSession();
  }

  /** Ends the current producer session, if any (best effort: it may be broken already). */
  private async endSession(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect().catch(() => undefined);
  }

  /** Sleeps `ms`; a `wakeable` sleep ends early at `notify` (and every sleep at `stop`). */
  private async sleep(ms: number, wakeable: boolean): Promise<void> {
    if (!this.running) return; // stopped during the round: no sleep after it
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        if (!wakeable && this.running) return;
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private async run(): Promise<void> {
    let backoff = 100;
    let failing = false;
    while (this.running) {
      try {
        this.nudged = false;
        const count = await this.publishOnce();
        if (failing) this.deps.log.info('Outbox relay recovered');
        failing = false;
        backoff = 100;
        if (count === 0) {
          if (!this.nudged && !this.more) await this.sleep(this.options.idleMs, true);
        } else if (!this.more) await this.sleep(this.options.pauseMs, false);
      } catch (error) {
        if (!failing)
          this.deps.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Outbox relay failed; backing off');
        failing = true;
        await this.sleep(backoff, false);
        backoff = Math.min(backoff * 2, this.options.maxBackoffMs);
      }
    }
  }

  /**
   * The unpublished rows of every topic — not only this relay's: a topic nobody relays any more
   * (renamed while rows were pending) shows here long before `verify` misses its reservations.
   * This relay's topic is always listed, at zero when drained.
   */
  async backlog(): Promise<OutboxBacklog[]> {
    const { rows } = await this.deps.pool.query<{ topic: string; rows: number; oldest_seconds: number }>(
      `SELECT topic, count(*)::int AS rows, extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds
         FROM outbox WHERE published_at IS NULL GROUP BY topic`,
    );
    const backlog = rows.map((row) => ({ topic: row.topic, rows: row.rows, oldestSeconds: Math.max(0, row.oldest_seconds) }));
    if (!backlog.some((b) => b.topic === this.deps.topic)) backlog.push({ topic: this.deps.topic, rows: 0, oldestSeconds: 0 });
    return backlog;
  }

  /**
   * One round: claim, send, mark. Returns the number of rows published. After a round that found
   * nothing, it first looks with one plain read (no transaction, no row locks): an idle relay costs
   * Postgres one query per `idleMs`, not three round trips.
   */
  async publishOnce(): Promise<number> {
    if (this.idle) {
      const { rows } = await this.deps.pool.query<{ pending: boolean }>(RELAY_QUERIES.pending, [this.deps.topic]);
      if (rows[0]?.pending !== true) return 0;
    }
    const count = await this.claimAndPublish();
    this.idle = count === 0 && !this.more;
    return count;
  }

  private async claimAndPublish(): Promise<number> {
    this.producer ??= await this.deps.connect();
    const producer = this.producer;
    const client = await checkout(this.deps.pool, 'outbox relay: connect');
    let broken = false;
    const sendDeadlineMs = this.options.sendDeadlineMs ?? SEND_DEADLINE_MS;
    try {
      await client.query('BEGIN');
      // The claimed rows stay locked while the send runs, and no statement runs meanwhile: a relay
      // that stops there (its process paused, its link to Postgres gone) must not keep them from
      // every other relay until a TCP keepalive notices — Postgres ends such a transaction itself.
      await client.query(`SET LOCAL idle_in_transaction_session_timeout = ${sendDeadlineMs + IDLE_MARGIN_MS}`);
      const { rows: claimed } = await client.query<OutboxRow>(RELAY_QUERIES.claim, [this.claimLimit, this.deps.topic]);
      if (claimed.length === 0) {
        await client.query('COMMIT');
        this.more = false;
        return 0;
      }
      // The oldest rows, up to MAX_SEND_BYTES; the others claimed are let go at the commit. Each
      // goes to the partition the producer's default partitioner would choose for its key (its
      // placement is unchanged), but chosen here: the acknowledgement must cover every one.
      const messages: { key: string; value: string; partition: number }[] = [];
      let bytes = 0;
      for (const row of claimed) {
        const value = JSON.stringify(row.payload);
        bytes += Buffer.byteLength(value) + Buffer.byteLength(row.message_key);
        if (messages.length > 0 && bytes > MAX_SEND_BYTES) break;
        messages.push({ key: row.message_key, value, partition: defaultPartition(this.deps.topic, row.message_key, producer.partitions) });
      }
      const rows = claimed.slice(0, messages.length);
      this.more = claimed.length === this.claimLimit || rows.length < claimed.length;
      try {
        const late = () => new Error(`Kafka send of ${rows.length} rows: no answer within ${sendDeadlineMs} ms`);
        const acks = await withDeadline(producer.send({ acks: -1, topic: this.deps.topic, messages }), sendDeadlineMs, late);
        // A resolved send is no proof (see `unacknowledged`): one that did not acknowledge every
        // partition it was given failed. Its session ends below like any failed send's (kafkajs has
        // rewound the sequence numbers of what it did not send, so a later batch of the same size to
        // such a partition could be taken for a duplicate and dropped), the rows stay unpublished
        // and go again in a new session — those of the partitions acknowledged twice, deduped by key.
        const targeted = [...new Set(messages.map((m) => m.partition))].sort((a, b) => a - b);
        const missing = unacknowledged(this.deps.topic, targeted, acks);
        if (missing.length > 0) {
          this.deps.onIncompleteAck?.();
          this.deps.log.warn(
            { topic: this.deps.topic, missingPartitions: missing, targetedPartitions: targeted, rows: rows.length },
            'Kafka acknowledged a send without some of its partitions: treated as failed, the rows go again in a new producer session',
          );
          throw new IncompleteAcknowledgementError(this.deps.topic, missing, targeted);
        }
      } catch (error) {
        this.claimLimit = Math.max(1, Math.floor(rows.length / 2));
        // Never send with this session again (see the class comment). Not awaited: the rows stay
        // locked until the rollback below.
        if (this.producer === producer) void this.endSession();
        // (Postgres may have ended the session already: idle past its timeout. The send's error is the one to report.)
        await client.query('ROLLBACK').catch(() => (broken = true));
        const message = String(error instanceof Error ? error.message : error).slice(0, 500);
        const rowFault = !broken && ROW_FAULTS.has(kafkaErrorType(error) ?? '');
        // Refused alone for a fault of its own, it would be refused again: it waits `deferMs`, and
        // the rows after it go on — always: a topic must never wait behind a row it refuses.
        const defer = rowFault && rows.length === 1;
        if (defer) {
          const deferMs = this.options.deferMs ?? DEFER_MS;
          await client.query(
            `UPDATE outbox SET attempts = attempts + 1, last_error = $2,
               deferred_until = now() + make_interval(secs => $3::float8 / 1000) WHERE id = $1`,
            [rows[0]!.id, message, deferMs],
          );
          this.deps.log.error(
            { id: rows[0]!.id, key: rows[0]!.message_key, topic: this.deps.topic, err: message, retryInMs: deferMs },
            'Outbox row refused by Kafka for a fault of its own: deferred, the rows after it go on',
          );
          // But past a few deferrals with no send succeeding in between, the rounds slow down (the
          // run loop's backoff): a topic whose limit is below every row's would otherwise have
          // them deferred one after another as fast as sends fail, each with a new producer
          // session and an error logged.
          if (++this.deferredInARow > MAX_DEFERRED_IN_A_ROW) throw error;
        } else if (!broken)
          await client
            .query('UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])', [
              rows.map((r) => r.id),
              message,
            ])
            .catch(() => undefined);
        if (!defer && !(rowFault && rows.length > 1)) throw error;
        // Kafka itself is fine: no backoff. The claim, halved, goes again at once, until the rows
        // before the one at fault are published and it goes alone (and is deferred).
        this.more = true;
        return 0;
      }
      await client.query(
        'UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1::bigint[])',
        [rows.map((r) => r.id)],
      );
      await client.query('COMMIT');
      this.deferredInARow = 0;
      this.claimLimit = Math.min(this.options.batchSize, this.claimLimit * 2);
      this.published += rows.length;
      this.deps.onPublished?.(rows.length);
      return rows.length;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
