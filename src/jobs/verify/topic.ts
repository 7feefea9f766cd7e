/**
 * Reads one event's confirmed reservations back from the Kafka topic and compares them with
 * Postgres. The topic is shared by every event, so reading starts at the offsets of the event's
 * creation time (minus a minute) and ends at the high-water marks taken after the outbox drained:
 * a bounded read with a definite end, not "wait and hope nothing else arrives".
 */
import { createKafka } from '../../adapters/kafka/client.js';
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

/** The event's messages by key (the first payload of each) and how many times each key came. */
export async function readEventFromTopic(options: {
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly eventId: string;
  readonly since: Date;
  readonly timeoutMs: number;
  readonly log: Logger;
}): Promise<{ messages: Map<string, { payload: ReservationPayload; count: number }>; counts: TopicCounts }> {
  const kafka = createKafka({ brokers: options.brokers, clientId: 'sentinel-verify', log: options.log });
  const admin = kafka.admin();
  const messages = new Map<string, { payload: ReservationPayload; count: number }>();
  let total = 0;
  let skipped = 0;
  const result = () => ({ messages, counts: { messages: total, unique: messages.size, duplicates: total - messages.size, skipped } });
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(options.topic)) return result();
    const high = await admin.fetchTopicOffsets(options.topic);
    const start = await admin.fetchTopicOffsetsByTimestamp(options.topic, options.since.getTime() - 60_000);
    /** Partition → [next offset to read, end offset]. */
    const ranges = new Map<number, [number, number]>();
    for (const h of high) {
      const from = Number(start.find((s) => s.partition === h.partition)?.offset ?? h.low);
      const to = Number(h.high);
      if (from < to) ranges.set(h.partition, [from, to]);
    }
    if (ranges.size === 0) return result();
    const groupId = `sentinel-verify-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 250, sessionTimeout: 10_000, heartbeatInterval: 1000 });
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: options.topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const range = ranges.get(batch.partition);
          if (range === undefined) return;
          for (const message of batch.messages) {
            const offset = Number(message.offset);
            if (offset < range[0] || offset >= range[1]) continue;
            range[0] = offset + 1;
            let payload: ReservationPayload;
            try {
              payload = JSON.parse(String(message.value)) as ReservationPayload;
            } catch {
              continue;
            }
            if (payload.eventId !== options.eventId) {
              skipped += 1;
              continue;
            }
            total += 1;
            const key = String(message.key);
            const seen = messages.get(key);
            if (seen) seen.count += 1;
            else messages.set(key, { payload, count: 1 });
          }
          if ([...ranges.values()].every(([next, end]) => next >= end)) finished();
        },
      });
      for (const [partition, [from]] of ranges) consumer.seek({ topic: options.topic, partition, offset: String(from) });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeoutMs)));
      const outcome = await Promise.race([done, timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') throw new Error(`reading ${options.topic} did not reach its end within ${options.timeoutMs} ms`);
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
    return result();
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Compares the topic with the event's reservations in Postgres. */
export async function checkTopic(
  db: Reader,
  eventId: string,
  messages: ReadonlyMap<string, { payload: ReservationPayload; count: number }>,
  read: { readonly unpublished: number; readonly settledAt: number },
  violations: Violations,
): Promise<{ tooRecent: number }> {
  const { rows } = await db.query<Omit<ReservationRow, 'event_id'>>(
    'SELECT reservation_id, hold_id, customer, seats, pool_id, quantity, confirmed_at FROM reservations WHERE event_id = $1',
    [eventId],
  );
  const known = new Map(rows.map((r) => [r.reservation_id, r]));
  const why =
    read.unpublished > 0 ? ` (${read.unpublished} outbox rows of the event are still unpublished: is a relay running, is Kafka up?)` : '';
  // Reservations committed after the outbox was seen drained may not be on the topic yet; they
  // are only counted (verify after the load to check them all).
  const cutoff = read.settledAt - RECENT_MARGIN_MS;
  let tooRecent = 0;
  for (const r of rows) {
    if (messages.has(r.reservation_id)) continue;
    if (r.confirmed_at.getTime() > cutoff && read.unpublished === 0) tooRecent += 1;
    else violations.add('topic-missing', `reservation ${r.reservation_id} of ${r.customer} is not on the topic${why}`);
  }
  for (const [key, { payload }] of messages) {
    const row = known.get(key);
    if (row === undefined) {
      violations.add('topic-unknown', `message ${key} on the topic names a reservation Postgres does not have`);
      continue;
    }
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
  return { tooRecent };
}

/** A reservation confirmed this close to the moment the outbox was seen drained may still be in flight (ms). */
const RECENT_MARGIN_MS = 5000;
