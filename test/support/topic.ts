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

/** Reads the reservations topic from the beginning and returns the keys of one event's messages. */
export async function reservationKeysOnTopic(eventId: string, expected: number, timeoutMs = 60_000): Promise<string[]> {
  const config = testConfig();
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'test-reader', log: silentLogger });
  const consumer = kafka.consumer({ groupId: uniqueName('reader') });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: config.reservationsTopic, fromBeginning: true });
    const keys: string[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      void consumer.run({
        eachMessage: async ({ message }) => {
          if (eventOf(message.value) === eventId) keys.push(String(message.key));
          if (new Set(keys).size >= expected) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    return keys;
  } finally {
    await consumer.disconnect();
  }
}
