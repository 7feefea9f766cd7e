import { Kafka, logLevel, type Producer, type Admin, type KafkaConfig, type LogEntry } from 'kafkajs';
import type { Logger } from '../../log.js';

export type { Producer, Admin };

/**
 * Creates a kafkajs client whose logs go to our logger (kafkajs' own logger is replaced). `tuning`
 * overrides the request timeout and the retries (tests that make a request time out).
 */
export function createKafka(options: {
  brokers: readonly string[];
  clientId: string;
  log: Logger;
  tuning?: Pick<KafkaConfig, 'requestTimeout' | 'retry'>;
}): Kafka {
  const log = options.log.child({ component: 'kafka' });
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    retry: { initialRetryTime: 200, retries: 5, maxRetryTime: 5000 },
    ...options.tuning,
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

/**
 * Creates the topic if missing (idempotent), replicated as the brokers' `default.replication.factor`
 * says (no factor is sent): a cluster of three set up for durability gets three copies, and with
 * acks=all a reservation marked published is on all in-sync replicas. Until 2026-12-05 the factor
 * was 1 — one copy, whatever the cluster. A topic that must differ is created beforehand.
 */
export async function ensureTopic(admin: Admin, topic: string, partitions = 3): Promise<void> {
  const existing = await admin.listTopics();
  if (existing.includes(topic)) return;
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
}

/**
 * An idempotent producer: the broker dedupes retried batches by producer id and sequence, so a
 * retry inside the client never duplicates a record (acks=all, one in-flight request).
 */
export function createIdempotentProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
}

/**
 * Opens a new idempotent producer session on `topic` (created if missing): a producer of its own,
 * connected, so it numbers its batches from zero under a new producer id. The outbox relay opens
 * one after every failed send (OutboxRelay). Nothing is left open when it fails.
 */
export async function openProducerSession(kafka: Kafka, topic: string): Promise<Producer> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await ensureTopic(admin, topic);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const producer = createIdempotentProducer(kafka);
  try {
    await producer.connect();
  } catch (error) {
    await producer.disconnect().catch(() => undefined);
    throw error;
  }
  return producer;
}
