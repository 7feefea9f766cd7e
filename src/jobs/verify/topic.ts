/**
 * Reads one event's confirmed reservations back from the Kafka topic and compares them with
 * Postgres. The topic is shared by every event, so reading starts at the offsets of the event's
 * creation time (minus a minute) and ends at the high-water marks taken when the read began: a
 * bounded read with a definite end, not "wait and hope nothing else arrives". Only the partitions
 * with something in that range are fetched; the others are paused, never read from their log start.
 *
 * Where reading starts is chosen by comparing clocks, and rests on an assumption: the start offsets
 * are the first whose message timestamp is at or after the event's creation minus 60 s
 * (`fetchTopicOffsetsByTimestamp`). A message's timestamp is its CreateTime, set by the engine whose
 * relay sent it, by the engine's clock; the event's creation time is Postgres's `now()`. So the
 * engines' clocks are assumed to be within 60 s of Postgres's: an engine more than 60 s behind could
 * stamp the event's first messages before the start offsets, and those would not be read (their
 * reservations reported missing from the topic, an unknown message among them unseen).
 *
 * Which reservations must lie below the high-water marks is decided by the database's own ordering,
 * not by comparing clocks: the relay commits an outbox row's `published_at` only after Kafka
 * acknowledged the message, so a row that a statement saw published before the marks were read is
 * on the topic below them (`publishedKeys`). A reservation missing from the topic is a violation
 * when its row was published then, however recent it is; when its row was not published yet (a
 * load still running, a slow relay), verify waits for the relay and reads the topic on from where
 * it stopped (`recheckTopic`) — nothing is excused for being recent.
 */
import { createKafka } from '../../adapters/kafka/client.js';
import type pg from 'pg';
import type { Logger } from '../../log.js';
import type { Reader } from './inventory-checks.js';
import type { Violations } from './violations.js';
import type { ReservationRow } from '../../adapters/postgres/inventory-store.js';

/** What was read from the topic. */
export interface TopicCounts {
  /** Messages of this event read. */
  readonly messages: number;
  /** Distinct keys (reservation ids) among them. */
  readonly unique: number;
  /** Messages beyond the first per key (at-least-once delivery; consumers dedupe by key). */
  readonly duplicates: number;
  /** Messages of other events passed over. */
  readonly skipped: number;
  /**
   * Messages whose value is not a JSON object (a tombstone, garbage), passed over: they are no
   * reservation, and name no event to hold them against.
   */
  readonly malformed: number;
  /**
   * Messages the consumer fetched, in every read so far: of any event, and past a partition's
   * range or not — what reading the topic cost. Only the partitions with something to read are
   * fetched, from where their range starts, so this is `messages + skipped + malformed` plus what
   * arrived past a high-water mark in the last batch of a partition; not a week of other events'
   * traffic read from the log's start.
   */
  readonly fetched: number;
}

interface ReservationPayload {
  readonly eventId?: string;
  readonly reservationId?: string;
  readonly holdId?: string;
  readonly customer?: string;
  readonly seats?: readonly string[];
  readonly pool?: string;
  readonly quantity?: number;
}

/** The event's messages read so far, by key, and where each partition's read ended; a later read goes on from there. */
export class TopicRead {
  /**
   * Key → every distinct payload read for it (by its raw value; duplicates from at-least-once
   * delivery carry the same one, and a different one must agree with Postgres too) and how many
   * times the key came.
   */
  readonly messages = new Map<string, { readonly payloads: Map<string, ReservationPayload>; count: number }>();
  /** Partition → the offset the last read ended at (the high-water mark when it began). */
  readonly ends = new Map<number, number>();
  private total = 0;
  private skipped = 0;
  private malformed = 0;
  private fetchedCount = 0;

  /** `n` messages fetched from the topic, whatever is done with them (`TopicCounts.fetched`). */
  fetched(n: number): void {
    this.fetchedCount += n;
  }

  /** One message value (as read from the topic) under `key`; values that are not JSON objects are counted and passed over. */
  add(eventId: string, key: string, value: Buffer | null): void {
    const payload = parsePayload(value);
    if (payload === undefined) {
      this.malformed += 1;
      return;
    }
    const raw = String(value);
    if (payload.eventId !== eventId) {
      this.skipped += 1;
      return;
    }
    this.total += 1;
    const seen = this.messages.get(key);
    if (seen === undefined) this.messages.set(key, { payloads: new Map([[raw, payload]]), count: 1 });
    else {
      seen.count += 1;
      if (!seen.payloads.has(raw)) seen.payloads.set(raw, payload);
    }
  }

  counts(): TopicCounts {
    return {
      messages: this.total,
      unique: this.messages.size,
      duplicates: this.total - this.messages.size,
      skipped: this.skipped,
      malformed: this.malformed,
      fetched: this.fetchedCount,
    };
  }
}

/** A message value as a payload, or undefined when it is not a JSON object. */
function parsePayload(value: Buffer | null): ReservationPayload | undefined {
  if (value === null) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(value.toString());
  } catch {
    return undefined;
  }
  return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? (payload as ReservationPayload) : undefined;
}

/**
 * Reads the event's messages up to the topic's current high-water marks into `read`: from where
 * `read` last ended, or (a partition not read yet) from the offsets of the event's creation time.
 */
export async function readEventFromTopic(
  options: {
    readonly brokers: readonly string[];
    readonly topic: string;
    readonly eventId: string;
    readonly since: Date;
    readonly timeoutMs: number;
    readonly log: Logger;
  },
  read = new TopicRead(),
): Promise<TopicRead> {
  const kafka = createKafka({ brokers: options.brokers, clientId: 'sentinel-verify', log: options.log });
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(options.topic)) return read;
    const high = await admin.fetchTopicOffsets(options.topic);
    const start = await admin.fetchTopicOffsetsByTimestamp(options.topic, options.since.getTime() - 60_000);
    /** Partition → [next offset to read, end offset]. */
    const ranges = new Map<number, [number, number]>();
    for (const h of high) {
      const from = read.ends.get(h.partition) ?? Number(start.find((s) => s.partition === h.partition)?.offset ?? h.low);
      const to = Number(h.high);
      if (from < to) ranges.set(h.partition, [from, to]);
    }
    const ended = () => {
      for (const h of high) read.ends.set(h.partition, Math.max(read.ends.get(h.partition) ?? 0, Number(h.high)));
      return read;
    };
    if (ranges.size === 0) return ended();
    const groupId = `sentinel-verify-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 250, sessionTimeout: 10_000, heartbeatInterval: 1000 });
    const topic = options.topic;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    // Only the partitions with something (left) to read are fetched. The group is new and
    // subscribes from the beginning, so a partition neither sought nor paused would be fetched and
    // decoded from its log start — on a shared topic, a week of every event's traffic, all of it
    // thrown away below. On joining the group (before its first fetch; and again after a rebalance,
    // which forgets the positions sought) each assigned partition with something left to read is
    // sought to where its read stands, and every other one is paused.
    const position = (assigned: readonly number[]) => {
      const idle: number[] = [];
      for (const partition of assigned) {
        const range = ranges.get(partition);
        if (range !== undefined && range[0] < range[1]) consumer.seek({ topic, partition, offset: String(range[0]) });
        else idle.push(partition);
      }
      if (idle.length > 0) consumer.pause([{ topic, partitions: idle }]);
    };
    // Async so that a throw is logged by the consumer, not thrown into its join: the partitions
    // are then read from their start, slowly but no less correctly (offsets outside a range are
    // passed over below).
    consumer.on(consumer.events.GROUP_JOIN, async ({ payload }) => position(payload.memberAssignment[topic] ?? []));
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          read.fetched(batch.messages.length);
          const range = ranges.get(batch.partition);
          if (range === undefined) return;
          for (const message of batch.messages) {
            const offset = Number(message.offset);
            if (offset < range[0] || offset >= range[1]) continue;
            range[0] = offset + 1;
            read.add(options.eventId, String(message.key), message.value);
          }
          // Read to its end: not fetched again while the other partitions are.
          if (range[0] >= range[1]) consumer.pause([{ topic, partitions: [batch.partition] }]);
          // Ends when every partition with a range has read it; the paused ones had none.
          if ([...ranges.values()].every(([next, end]) => next >= end)) finished();
        },
      });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeoutMs)));
      const outcome = await Promise.race([done, timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') throw new Error(`reading ${options.topic} did not reach its end within ${options.timeoutMs} ms`);
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
    return ended();
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Waits until the event's outbox rows for `topic` that are unpublished now (only those of `keys`,
 * when given) are published, up to `timeoutMs`; returns how many are not. Rows committed while it
 * waits are not waited for, so a load that keeps running cannot keep it waiting to the end. Rows
 * for other topics are not waited for either: they never reach `topic`, whatever a relay does.
 */
export async function settleOutbox(
  pool: pg.Pool,
  eventId: string,
  topic: string,
  timeoutMs: number,
  onWait?: (left: number) => void,
  keys?: readonly string[],
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let upTo: string | null | undefined;
  for (;;) {
    const { rows } = await pool.query<{ n: number; last: string | null }>(
      `SELECT count(*)::int AS n, max(id)::text AS last FROM outbox
        WHERE event_id = $1 AND topic = $2 AND published_at IS NULL AND ($3::text[] IS NULL OR message_key = ANY($3))
          AND ($4::bigint IS NULL OR id <= $4)`,
      [eventId, topic, keys ?? null, upTo ?? null],
    );
    const left = rows[0]?.n ?? 0;
    upTo ??= rows[0]?.last ?? null;
    if (left === 0 || Date.now() >= deadline) return left;
    onWait?.(left);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * The reservation ids (outbox message keys) of the event whose outbox rows for `topic` one
 * statement sees published (only among `keys`, when given). Taken before the topic's high-water
 * marks are read, each of them must be below the marks: the relay commits `published_at` after
 * Kafka acknowledged the message. (The value of `published_at` is the relay transaction's start,
 * before its send: only the commit order, not that timestamp, says the message was acknowledged.)
 * A row published to another topic says nothing about this one.
 */
export async function publishedKeys(pool: pg.Pool, eventId: string, topic: string, keys?: readonly string[]): Promise<Set<string>> {
  const { rows } = await pool.query<{ message_key: string }>(
    `SELECT DISTINCT message_key FROM outbox
      WHERE event_id = $1 AND topic = $2 AND published_at IS NOT NULL AND ($3::text[] IS NULL OR message_key = ANY($3))`,
    [eventId, topic, keys ?? null],
  );
  return new Set(rows.map((r) => r.message_key));
}

/** A reservation as the topic checks need it; `outbox_topics`: the topics its outbox rows were written for (none: no row). */
export type TopicReservation = Omit<ReservationRow, 'event_id'> & { readonly outbox_topics: readonly string[] };

/** What `checkTopic` could not decide yet, or at all. */
export interface TopicCheck {
  /** Not on the topic, their rows for it not published then: `recheckTopic` decides them after waiting for the relay. */
  readonly pending: TopicReservation[];
  /**
   * Not on the topic, with outbox rows only for other topics: the engines that wrote them publish
   * to those (their SENTINEL_RESERVATIONS_TOPIC is not verify's), so whether they reached Kafka is
   * not checked here — neither a violation nor a pass (`otherTopicsNote`). `topics`: topic → how
   * many of them have a row for it.
   */
  readonly otherTopics: { readonly reservations: number; readonly topics: ReadonlyMap<string, number> };
}

/**
 * Compares `topic` (as read) with the event's reservations in Postgres. `published`: what
 * `publishedKeys` returned before `read` began. A reservation missing from the topic is a
 * violation when it has no outbox row, or its row for `topic` was published then; is pending when
 * that row was not published yet; and is not checked when its rows are for other topics only.
 */
export async function checkTopic(
  db: Reader,
  eventId: string,
  topic: string,
  read: TopicRead,
  published: ReadonlySet<string>,
  violations: Violations,
): Promise<TopicCheck> {
  const { rows } = await db.query<TopicReservation>(
    // One pass over the event's outbox rows, joined by hash: a subquery per reservation read the
    // whole outbox each time (it has no index on the message key) — 110 s for the 40,000
    // reservations of `npm run bench`.
    `SELECT r.reservation_id, r.hold_id, r.customer, r.seats, r.pool_id, r.quantity, r.confirmed_at,
            coalesce(o.topics, '{}'::text[]) AS outbox_topics
       FROM reservations r
       LEFT JOIN (SELECT message_key, array_agg(DISTINCT topic ORDER BY topic) AS topics
                    FROM outbox WHERE event_id = $1 GROUP BY message_key) o ON o.message_key = r.reservation_id
      WHERE r.event_id = $1`,
    [eventId],
  );
  const known = new Map(rows.map((r) => [r.reservation_id, r]));
  const pending: TopicReservation[] = [];
  let elsewhere = 0;
  const topics = new Map<string, number>();
  for (const r of rows) {
    if (read.messages.has(r.reservation_id)) continue;
    if (r.outbox_topics.length === 0) missing(violations, r, 'it has no outbox row');
    else if (!r.outbox_topics.includes(topic)) {
      elsewhere += 1;
      for (const other of r.outbox_topics) topics.set(other, (topics.get(other) ?? 0) + 1);
    } else if (published.has(r.reservation_id)) missing(violations, r, 'its outbox row was published before verify read the topic');
    else pending.push(r);
  }
  for (const [key, { payloads }] of read.messages) {
    const row = known.get(key);
    if (row === undefined) violations.add('topic-unknown', `message ${key} on the topic names a reservation Postgres does not have`);
    else for (const payload of payloads.values()) compareMessage(key, payload, row, violations);
  }
  return { pending, otherTopics: { reservations: elsewhere, topics } };
}

/**
 * Why reservations whose outbox rows are for other topics were not checked on `topic`, naming
 * those topics; undefined when there are none. Pure.
 */
export function otherTopicsNote(topic: string, other: TopicCheck['otherTopics']): string | undefined {
  if (other.reservations === 0) return undefined;
  const topics = [...other.topics]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => `${name} (${n})`)
    .join(', ');
  const n = other.reservations;
  return (
    `${n === 1 ? '1 reservation' : `${n} reservations`} not on ${topic} ${n === 1 ? 'has' : 'have'} outbox rows only for other ` +
    `topics: ${topics}. Not checked: verify reads ${topic} (SENTINEL_RESERVATIONS_TOPIC), the engines that wrote them publish to those`
  );
}

/**
 * Decides the reservations `checkTopic` could not: waits (up to `settleTimeoutMs`) for the relay to
 * publish their outbox rows, notes which are published, then reads the topic on from where `read`
 * ended. Each must be on it unless its row is still unpublished — which, after the wait, is a
 * violation too (no relay, or Kafka down). Messages of other reservations that arrived meanwhile
 * are committed after verify's snapshot, and left for the next verify. Throws when the topic
 * cannot be read.
 */
export async function recheckTopic(
  options: {
    readonly pool: pg.Pool;
    readonly eventId: string;
    readonly pending: readonly TopicReservation[];
    readonly settleTimeoutMs: number;
    readonly onWait?: (left: number) => void;
    readonly topic: Parameters<typeof readEventFromTopic>[0];
  },
  read: TopicRead,
  violations: Violations,
): Promise<void> {
  const keys = options.pending.map((r) => r.reservation_id);
  await settleOutbox(options.pool, options.eventId, options.topic.topic, options.settleTimeoutMs, options.onWait, keys);
  const published = await publishedKeys(options.pool, options.eventId, options.topic.topic, keys);
  await readEventFromTopic(options.topic, read);
  for (const r of options.pending) {
    const message = read.messages.get(r.reservation_id);
    if (message !== undefined) for (const payload of message.payloads.values()) compareMessage(r.reservation_id, payload, r, violations);
    else if (published.has(r.reservation_id)) missing(violations, r, 'its outbox row was published before verify read the topic again');
    else {
      missing(
        violations,
        r,
        `its outbox row is still unpublished after waiting ${options.settleTimeoutMs / 1000} s for the relay (is a relay running, is Kafka up?)`,
      );
    }
  }
}

function missing(violations: Violations, r: TopicReservation, why: string): void {
  violations.add('topic-missing', `reservation ${r.reservation_id} of ${r.customer} is not on the topic: ${why}`);
}

/** A message must say what its reservation row says. */
function compareMessage(key: string, payload: ReservationPayload, row: TopicReservation, violations: Violations): void {
  const seats = [...(payload.seats ?? [])].sort().join();
  if (
    payload.reservationId !== key ||
    payload.holdId !== row.hold_id ||
    payload.customer !== row.customer ||
    payload.quantity !== row.quantity ||
    (payload.pool ?? null) !== row.pool_id ||
    seats !== [...row.seats].sort().join()
  ) {
    violations.add('topic-unknown', `message ${key} disagrees with its reservation in Postgres: ${JSON.stringify(payload)}`);
  }
}
