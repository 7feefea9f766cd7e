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
