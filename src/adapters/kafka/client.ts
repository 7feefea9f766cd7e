import { Kafka, logLevel, Partitioners, type Producer, type Admin, type KafkaConfig, type LogEntry, type PartitionMetadata } from 'kafkajs';
import type { Logger } from '../../log.js';

export type { Producer, Admin };

/**
 * An open producer session (`openProducerSession`): what the outbox relay sends with (its
 * `RelayProducer`).
 */
export interface ProducerSession extends Pick<Producer, 'send' | 'disconnect'> {
  /**
   * How many partitions the session's topic had when the session opened. Kafka only ever adds
   * partitions to a topic, never removes one, so every partition below this count exists for the
   * session's whole life; one added meanwhile is simply not used until the next session.
   */
  readonly partitions: number;
}

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
 * says (no factor is sent; until 2026-12-05 it was 1 — one copy, whatever the cluster), and with the
 * brokers' `min.insync.replicas` (none is sent either). acks=all waits for the replicas that are
 * in sync at the time, and no more: with Kafka's default `min.insync.replicas` of 1, a send is
 * acknowledged — and its reservation marked published — with a single copy once the other replicas
 * have fallen out of sync, whatever the replication factor. A durable cluster sets
 * `min.insync.replicas` to at least 2 on the topic or as the brokers' default (README, "Kafka for a
 * durable deployment"); Sentinel does not guess the cluster's size to set it. A topic that must
 * differ is created beforehand.
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

/** The number of partitions of `topic`, as the cluster's metadata has it now. */
export async function topicPartitionCount(admin: Admin, topic: string): Promise<number> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  const count = topics.find((t) => t.name === topic)?.partitions.length ?? 0;
  if (count < 1) throw new Error(`Kafka reports no partitions for topic ${topic}`);
  return count;
}

/** kafkajs's default partitioner (the producer's when none is given), and its argument for each partition count. */
const defaultPartitioner = Partitioners.DefaultPartitioner();
const partitionMetadataOfCount = new Map<number, PartitionMetadata[]>();

/**
 * The partition kafkajs's default partitioner (`Partitioners.DefaultPartitioner`: murmur2 of the
 * key, as the Java client's) gives a message of `key` on a topic of `partitions` partitions: the
 * very function, called as the producer calls it. A message sent with this partition lands where
 * the producer would have put it.
 */
export function defaultPartition(topic: string, key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`a topic has at least one partition, not ${partitions}`);
  let partitionMetadata = partitionMetadataOfCount.get(partitions);
  if (partitionMetadata === undefined) {
    // Only its length counts for a message with a key (the leaders matter only to messages without one).
    partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
    }));
    partitionMetadataOfCount.set(partitions, partitionMetadata);
  }
  return defaultPartitioner({ topic, partitionMetadata, message: { key, value: null } });
}

/**
 * Opens a new idempotent producer session on `topic` (created if missing): a producer of its own,
 * connected, so it numbers its batches from zero under a new producer id, and the topic's partition
 * count, learned now (see `ProducerSession.partitions`): the outbox relay gives every message its
 * partition itself, and checks that an acknowledged send covers each one it sent to (OutboxRelay).
 * The relay opens a session after every failed send. Nothing is left open when it fails.
 */
export async function openProducerSession(kafka: Kafka, topic: string): Promise<ProducerSession> {
  const admin = kafka.admin();
  let partitions: number;
  try {
    await admin.connect();
    await ensureTopic(admin, topic);
    partitions = await topicPartitionCount(admin, topic);
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
  return { partitions, send: (record) => producer.send(record), disconnect: () => producer.disconnect() };
}
