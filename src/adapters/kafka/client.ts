import { Kafka, logLevel, type Producer, type Admin, type LogEntry } from 'kafkajs';
import type { Logger } from '../../log.js';

export type { Producer, Admin };

/** Creates a kafkajs client whose logs go to our logger (kafkajs' own logger is replaced). */
export function createKafka(options: { brokers: readonly string[]; clientId: string; log: Logger }): Kafka {
  const log = options.log.child({ component: 'kafka' });
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    retry: { initialRetryTime: 200, retries: 5, maxRetryTime: 5000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        if (level <= logLevel.ERROR) log.warn(rest, message);
        else log.debug(rest, message);
      },
  });
}

/** Creates the topic if missing (idempotent). */
export async function ensureTopic(admin: Admin, topic: string, partitions = 3): Promise<void> {
  const existing = await admin.listTopics();
  if (existing.includes(topic)) return;
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
}

/**
 * An idempotent producer: the broker dedupes retried batches by producer id and sequence, so a
 * retry inside the client never duplicates a record (acks=all, one in-flight request).
 */
export function createIdempotentProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
}
