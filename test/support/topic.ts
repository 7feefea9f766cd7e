import { createKafka } from '../../src/adapters/kafka/client.js';
import { silentLogger } from '../../src/log.js';
import { testConfig, uniqueName } from './env.js';

/** The event a message is about; undefined for a message that is not a reservation (anyone may write to a topic). */
function eventOf(value: Buffer | null): string | undefined {
  try {
    return (JSON.parse(String(value)) as { eventId?: string }).eventId;
  } catch {
    return undefined;
  }
}

/**
 * Reads the reservations topic (or `topic`) from the messages of the last `lookBackMs` (10 minutes: longer than
 * any test file takes to produce and read them) and returns the keys of one event's messages. Not
 * from the beginning: on a machine that ran benchmarks the topic holds millions of messages, and
 * a read from offset 0 did not reach this event's within the timeout.
 */
export async function reservationKeysOnTopic(
  eventId: string,
  expected: number,
  timeoutMs = 60_000,
  lookBackMs = 10 * 60_000,
  topic = testConfig().reservationsTopic,
): Promise<string[]> {
  const config = testConfig();
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'test-reader', log: silentLogger });
  const admin = kafka.admin();
  await admin.connect();
  const start = await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - lookBackMs).finally(() => admin.disconnect());
  const consumer = kafka.consumer({ groupId: uniqueName('reader') });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const keys: string[] = [];
    let enough!: () => void;
    const done = new Promise<void>((resolve) => (enough = resolve));
    const timer = setTimeout(enough, timeoutMs);
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (eventOf(message.value) === eventId) keys.push(String(message.key));
        if (new Set(keys).size >= expected) enough();
      },
    });
    try {
      for (const { partition, offset } of start) consumer.seek({ topic, partition, offset });
    } catch {
      // The consumer is between group generations (it restarts after a broker that was just
      // restarted refused it): the seek only skips old messages, and reading from the beginning
      // finds the same keys, more slowly.
    }
    await done;
    clearTimeout(timer);
    return keys;
  } finally {
    await consumer.disconnect();
  }
}

/**
 * Every key on a topic of a test's own, read from the beginning to the end it had when the read
 * began (its high-water marks), duplicates included — where `reservationKeysOnTopic` stops at the
 * first `expected` distinct keys. The last offset of each partition must be a message (true for
 * the relay's idempotent, non-transactional producer: no transaction markers, no compaction).
 */
export async function keysToEndOfTopic(topic: string, timeoutMs = 60_000): Promise<string[]> {
  const kafka = createKafka({ brokers: testConfig().kafkaBrokers, clientId: 'test-reader', log: silentLogger });
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const left = new Map(ends.filter((p) => Number(p.high) > Number(p.low)).map((p) => [p.partition, Number(p.high)]));
  const keys: string[] = [];
  if (left.size === 0) return keys;
  const consumer = kafka.consumer({ groupId: uniqueName('reader') });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let reached!: () => void;
    const done = new Promise<void>((resolve) => (reached = resolve));
    const timer = setTimeout(reached, timeoutMs);
    timer.unref();
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        keys.push(String(message.key));
        const high = left.get(partition);
        if (high !== undefined && Number(message.offset) >= high - 1) left.delete(partition);
        if (left.size === 0) reached();
      },
    });
    try {
      await done;
    } finally {
      clearTimeout(timer);
    }
    if (left.size > 0) throw new Error(`topic ${topic}: not read to its end within ${timeoutMs} ms`);
    return keys;
  } finally {
    await consumer.disconnect();
  }
}
