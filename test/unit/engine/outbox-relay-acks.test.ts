/**
 * The outbox relay places every message itself and holds a resolved send to an acknowledgement of
 * every partition it went to — against a stand-in for Postgres and Kafka. kafkajs 2.2.4 can resolve
 * a send that never sent one partition's messages (its leader moved to a broker that had already
 * answered: tulios/kafkajs#1798); a relay that trusted the resolved send marked those rows
 * published, and the reservations never reached Kafka.
 */
import type pg from 'pg';
import { Partitioners, type Message, type PartitionMetadata, type ProducerRecord, type RecordMetadata } from 'kafkajs';
import { createRequire } from 'node:module';
import t from 'tap';
import { defaultPartition } from '../../../src/adapters/kafka/client.js';
import { IncompleteAcknowledgementError, OutboxRelay, unacknowledged, type RelayProducer } from '../../../src/engine/outbox-relay.js';
import { silentLogger } from '../../../src/log.js';

const TOPIC = 'reservations';

/**
 * An outbox of `keys` (ids 1…n) whose claims hand out the unpublished rows, and whose transactions
 * take effect at COMMIT only: a rolled-back round leaves its rows unpublished.
 */
function fakeOutbox(keys: readonly string[]) {
  const rows = keys.map((key, i) => ({ id: String(i + 1), message_key: key, payload: { reservationId: key } }));
  const state = { published: new Set<string>(), commits: 0, rollbacks: 0 };
  let marked: string[] = [];
  const client = {
    async query(text: string, params?: unknown[]) {
      if (text === 'BEGIN') marked = [];
      else if (text === 'COMMIT') {
        for (const id of marked) state.published.add(id);
        state.commits++;
      } else if (text === 'ROLLBACK') {
        marked = [];
        state.rollbacks++;
      } else if (text.startsWith('SELECT id')) {
        const limit = params![0] as number;
        return { rows: rows.filter((r) => !state.published.has(r.id)).slice(0, limit) };
      } else if (text.includes('published_at = now()')) marked = [...(params![0] as string[])];
      return { rows: [] };
    },
    release: () => undefined,
    listeners: () => [],
    on: () => undefined,
  };
  const pool = {
    async query() {
      return { rows: [{ pending: rows.some((r) => !state.published.has(r.id)) }] };
    },
    connect: async () => client,
  } as unknown as pg.Pool;
  return { state, pool };
}

/** What kafkajs's broker answers name: each partition of `messages`, written (errorCode 0), except those of `drop`. */
function acksFor(record: ProducerRecord, drop: (partition: number) => boolean = () => false): RecordMetadata[] {
  const partitions = [...new Set(record.messages.map((m) => m.partition!))];
  return partitions.filter((p) => !drop(p)).map((partition) => ({ topicName: record.topic, partition, errorCode: 0, baseOffset: '0' }));
}

/** Producer sessions of `partitions` partitions; the first answers with `firstAnswer`, later ones acknowledge everything. */
function fakeSessions(partitions: number, firstAnswer: (record: ProducerRecord) => RecordMetadata[]) {
  const sessions: { sent: ProducerRecord[]; ended: boolean }[] = [];
  const connect = async (): Promise<RelayProducer> => {
    const session = { sent: [] as ProducerRecord[], ended: false };
    const n = sessions.push(session);
    return {
      partitions,
      send: async (record) => {
        if (session.ended) throw new Error('sent with an ended session');
        session.sent.push(record);
        return n === 1 ? firstAnswer(record) : acksFor(record);
      },
      disconnect: async () => {
        session.ended = true;
      },
    };
  };
  return { sessions, connect };
}

/** Keys of reservations, enough to land on every partition of a small topic. */
const keys = Array.from({ length: 40 }, (_, i) => `r_0b5f1c2e-${String(i).padStart(4, '0')}`);

t.test(
  'a send resolved without the acknowledgement of a partition it went to fails: its rows stay unpublished and go again in a new session',
  async (t) => {
    const { state, pool } = fakeOutbox(keys);
    // As kafkajs after a leader moved to a broker that had answered already: the highest partition sent to is missing.
    const { sessions, connect } = fakeSessions(3, (record) => {
      const highest = Math.max(...record.messages.map((m) => m.partition!));
      return acksFor(record, (p) => p === highest);
    });
    const warnings: { fields: Record<string, unknown>; message: string }[] = [];
    const log = {
      ...silentLogger,
      warn: (fields: Record<string, unknown>, message: string) => void warnings.push({ fields, message }),
    } as unknown as typeof silentLogger;
    let incompleteAcks = 0;
    const relay = new OutboxRelay({
      pool,
      connect,
      topic: TOPIC,
      log,
      options: { batchSize: 100, pauseMs: 10, idleMs: 10, maxBackoffMs: 100 },
      onIncompleteAck: () => incompleteAcks++,
    });

    const error = await relay.publishOnce().then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(error, IncompleteAcknowledgementError, 'the round fails');
    const sent = sessions[0]!.sent[0]!;
    const targeted = [...new Set(sent.messages.map((m) => m.partition!))].sort((a, b) => a - b);
    t.same(targeted, [0, 1, 2], 'the send went to every partition');
    t.same((error as IncompleteAcknowledgementError).missing, [2], 'the missing partition is named');
    t.match(String((error as Error).message), /partition\(s\) 2 /, 'in the message too');
    t.equal(state.published.size, 0, 'no row is marked published — not even those of the acknowledged partitions');
    t.ok(state.rollbacks >= 1, 'the round rolled back');
    t.equal(state.commits, 0, 'and did not commit');
    t.equal(relay.published, 0);
    t.equal(incompleteAcks, 1, 'the incomplete acknowledgement is counted (sentinel_outbox_incomplete_acks_total)');
    t.ok(sessions[0]!.ended, 'its session is ended: never sent with again');
    const warning = warnings.find((w) => /without some of its partitions/.test(w.message));
    t.same(warning?.fields['missingPartitions'], [2], 'logged at warn with the missing partitions');

    // The rounds after a failed send claim half as many rows (doubled again after each success).
    let rounds = 0;
    while (relay.published < keys.length && rounds < 5) {
      rounds++;
      await relay.publishOnce();
    }
    t.equal(relay.published, keys.length, `the next rounds publish the rows (${rounds})`);
    t.equal(sessions.length, 2, 'in a new session');
    t.same(
      sessions[1]!.sent.flatMap((r) => r.messages.map((m) => String(m.key))).sort(),
      [...keys].sort(),
      'which sends every row again (those of the acknowledged partitions twice in all, deduped by key)',
    );
    t.equal(state.published.size, keys.length, 'every row is published now');
    t.equal(incompleteAcks, 1);
  },
);

t.test('driven by its loop, the relay publishes everything after an incomplete acknowledgement, in a second session', async (t) => {
  const { state, pool } = fakeOutbox(keys);
  const { sessions, connect } = fakeSessions(4, (record) => acksFor(record, (p) => p === 0));
  const relay = new OutboxRelay({
    pool,
    connect,
    topic: TOPIC,
    log: silentLogger,
    options: { batchSize: 100, pauseMs: 10, idleMs: 10, maxBackoffMs: 100 },
  });
  relay.start();
  t.teardown(() => relay.stop());
  const deadline = Date.now() + 3000;
  while (state.published.size < keys.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  t.equal(state.published.size, keys.length, 'every row published');
  t.equal(relay.published, keys.length, 'each once, by the relay');
  t.equal(sessions.length, 2, 'the session whose send was not fully acknowledged was replaced');
  t.ok(sessions[0]!.ended);
});

t.test('an answer that acknowledges every partition, in any order and with others besides, is a success', async (t) => {
  t.same(
    unacknowledged(
      TOPIC,
      [2, 0],
      [
        { topicName: TOPIC, partition: 0, errorCode: 0 },
        { topicName: TOPIC, partition: 2, errorCode: 0 },
      ],
    ),
    [],
  );
  t.same(unacknowledged(TOPIC, [0, 1], undefined), [0, 1], 'no answer acknowledges nothing');
  t.same(
    unacknowledged(
      TOPIC,
      [0, 1],
      [
        { topicName: TOPIC, partition: 0, errorCode: 0 },
        { topicName: TOPIC, partition: 1, errorCode: 6 },
      ],
    ),
    [1],
    'an entry with an error code is no acknowledgement',
  );
  t.same(unacknowledged(TOPIC, [0], [{ topicName: 'other', partition: 0, errorCode: 0 }]), [0], "another topic's is none either");
});

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils#murmur2), written here from the Java, apart from kafkajs's. */
function javaMurmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  let h = 0x9747b28c ^ data.length;
  const length4 = data.length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = data.length & ~3;
  // Java's switch on length % 4, its cases falling through.
  const rest = data.length % 4;
  if (rest >= 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Partition metadata as kafkajs's cluster gives it: `count` partitions, some without a leader at the moment. */
function clusterMetadata(count: number): PartitionMetadata[] {
  return Array.from({ length: count }, (_, partitionId) => ({
    partitionId,
    leader: partitionId % 3 === 1 ? -1 : 1 + (partitionId % 2),
    partitionErrorCode: 0,
    replicas: [1, 2],
    isr: [1, 2],
  }));
}

t.test("every message's explicit partition is the one kafkajs's default partitioner chooses for its key and the count", async (t) => {
  const many = [
    ...Array.from({ length: 500 }, (_, i) => `r_${i.toString(36)}-${(i * 7919).toString(16)}`),
    '',
    'x',
    'ab',
    'abc',
    'réservation-é',
    '席-予約-🎟️',
  ];
  for (const count of [1, 2, 3, 5, 12, 64]) {
    const producerPartitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = clusterMetadata(count);
    let same = 0;
    let java = 0;
    for (const key of many) {
      const message: Message = { key, value: 'v' };
      const theirs = producerPartitioner({ topic: TOPIC, partitionMetadata, message });
      const ours = defaultPartition(TOPIC, key, count);
      if (ours === theirs) same++;
      if (ours === (javaMurmur2(Buffer.from(key)) & 0x7fffffff) % count) java++;
    }
    t.equal(same, many.length, `${count} partition(s): the producer's default partitioner agrees on every key`);
    t.equal(java, many.length, `${count} partition(s): and so does the Java client's placement`);
  }
  // Kafka's own test vectors of murmur2 (UtilsTest), placed on 7 partitions.
  const vectors: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
    ['12345', -1188365604],
  ];
  for (const [key, hash] of vectors) t.equal(defaultPartition(TOPIC, key, 7), (hash & 0x7fffffff) % 7, `key ${key}`);
  t.throws(() => defaultPartition(TOPIC, 'k', 0), /at least one partition/);
});

t.test('the relay sends each row with the partition the default partitioner gives its key', async (t) => {
  const { pool } = fakeOutbox(keys);
  const { sessions, connect } = fakeSessions(5, (record) => acksFor(record));
  const relay = new OutboxRelay({ pool, connect, topic: TOPIC, log: silentLogger });
  t.equal(await relay.publishOnce(), keys.length);
  const producerPartitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = clusterMetadata(5);
  const sent = sessions[0]!.sent.flatMap((r) => r.messages);
  t.equal(sent.length, keys.length);
  const misplaced = sent.flatMap((message) => {
    const expected = producerPartitioner({ topic: TOPIC, partitionMetadata, message: { key: message.key, value: message.value } });
    return message.partition === expected ? [] : [`${String(message.key)}: partition ${message.partition}, the producer's ${expected}`];
  });
  t.same(misplaced, [], "every message has the partition the producer's default partitioner gives it");
  t.ok(new Set(sent.map((m) => m.partition)).size > 1, 'the rows spread over several partitions');
});

/**
 * kafkajs's own `sendMessages` (2.2.4), the code a producer's `send` runs, over a fake cluster of two
 * brokers — as /tmp/review/leader-move.cjs reproduced the defect: partition 0 led by broker 1,
 * partition 1 by broker 2. In the first session broker 2 is shutting down: it answers
 * NOT_LEADER_FOR_PARTITION, and the metadata then read moves partition 1 to broker 1, which has
 * already answered for partition 0. kafkajs never sends partition 1's messages and resolves the send.
 */
function kafkajsOverTwoBrokers() {
  const require = createRequire(import.meta.url);
  const src = require.resolve('kafkajs').replace(/index\.js$/, 'src/');
  const sendMessages = require(`${src}producer/sendMessages`) as (deps: unknown) => (request: unknown) => Promise<RecordMetadata[]>;
  const createRetry = require(`${src}retry`) as (options: unknown) => unknown;
  const { createErrorFromCode } = require(`${src}protocol/error`) as { createErrorFromCode: (code: number) => Error };
  /** Every message a broker appended: its partition and key. */
  const written: { partition: number; key: string }[] = [];
  let session = 0;
  const connect = async (): Promise<RelayProducer> => {
    const mine = ++session;
    const leaders: Record<number, number> = { 0: 1, 1: 2 };
    const broker = (nodeId: number) => ({
      nodeId,
      async produce({ topicData }: { topicData: { topic: string; partitions: { partition: number; messages: Message[] }[] }[] }) {
        if (mine === 1 && nodeId === 2) throw createErrorFromCode(6); // NOT_LEADER_FOR_PARTITION
        for (const { partitions } of topicData)
          for (const { partition, messages } of partitions) for (const m of messages) written.push({ partition, key: String(m.key) });
        return {
          topics: topicData.map(({ topic, partitions }) => ({
            topicName: topic,
            partitions: partitions.map(({ partition }) => ({ partition, errorCode: 0, baseOffset: '0' })),
          })),
        };
      },
    });
    const brokers: Record<number, ReturnType<typeof broker>> = { 1: broker(1), 2: broker(2) };
    const cluster = {
      refreshMetadataIfNecessary: async () => undefined,
      addMultipleTargetTopics: async () => undefined,
      isConnected: () => true,
      refreshMetadata: async () => {
        leaders[1] = 1; // broker 2's controlled shutdown moved partition 1 to broker 1
      },
      removeBroker: () => undefined,
      findTopicPartitionMetadata: () => [0, 1].map((partitionId) => ({ partitionId, leader: leaders[partitionId] })),
      findLeaderForPartitions: (_topic: string, partitions: string[]) => {
        const out: Record<number, number[]> = {};
        for (const p of partitions) (out[leaders[Number(p)]!] ??= []).push(Number(p));
        return out;
      },
      findBroker: async ({ nodeId }: { nodeId: number }) => brokers[nodeId],
    };
    const sequences: Record<number, number> = {};
    const eosManager = {
      isTransactional: () => false,
      getSequence: (_t: string, p: number) => sequences[p] ?? 0,
      updateSequence: (_t: string, p: number, n: number) => void (sequences[p] = (sequences[p] ?? 0) + n),
      getProducerId: () => mine,
      getProducerEpoch: () => 0,
      acquireBrokerLock: async () => undefined,
      releaseBrokerLock: async () => undefined,
    };
    const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    const send = sendMessages({
      logger,
      cluster,
      partitioner: Partitioners.DefaultPartitioner(),
      eosManager,
      retrier: createRetry({ retries: 3, initialRetryTime: 5, maxRetryTime: 20 }),
    });
    return {
      partitions: 2,
      send: ({ topic, messages, acks }) => send({ acks, timeout: 30_000, topicMessages: [{ topic, messages }] }),
      disconnect: async () => undefined,
    };
  };
  return { written, connect, sessions: () => session };
}

t.test(
  "with kafkajs's own send, a partition whose leader moved to a broker that had answered is published only once it is written",
  async (t) => {
    const { written, connect, sessions } = kafkajsOverTwoBrokers();
    const { state, pool } = fakeOutbox(keys);
    const relay = new OutboxRelay({ pool, connect, topic: TOPIC, log: silentLogger });
    const byId = new Map(keys.map((key, i) => [String(i + 1), key]));
    /** Rows marked published whose message no broker appended. */
    const lost = () => [...state.published].map((id) => byId.get(id)!).filter((key) => !written.some((w) => w.key === key));
    const outcomes: string[] = [];
    for (let round = 0; round < 6 && state.published.size < keys.length; round++) {
      outcomes.push(
        await relay.publishOnce().then(
          (n) => `published ${n}`,
          (e: unknown) => `failed: ${e instanceof Error ? e.name : String(e)}`,
        ),
      );
      t.same(lost(), [], `after round ${round + 1} (${outcomes.at(-1)}), every row marked published is on its partition`);
    }
    t.equal(outcomes[0], 'failed: IncompleteAcknowledgementError', 'the first send resolved without partition 1, and failed');
    t.equal(state.published.size, keys.length, 'every row is published in the end');
    t.equal(sessions(), 2, 'in a second session');
    t.same(
      written.filter(({ partition, key }) => partition !== defaultPartition(TOPIC, key, 2)),
      [],
      'each message was written to the partition of its key',
    );
  },
);
