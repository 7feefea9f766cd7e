import type pg from 'pg';
import kafkajs from 'kafkajs';
import t, { type Test } from 'tap';
import {
  createKafka,
  defaultPartition,
  ensureTopic,
  openProducerSession,
  topicPartitionCount,
} from '../../../src/adapters/kafka/client.js';
import { EngineMetrics } from '../../../src/engine/metrics.js';
import { MAX_DEFERRED_IN_A_ROW, OutboxRelay, RELAY_QUERIES } from '../../../src/engine/outbox-relay.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { ownDatabase, testDatabase } from '../../support/stack.js';
import { keysToEndOfTopic, reservationKeysOnTopic } from '../../support/topic.js';
import { localServicePids } from '../../../src/jobs/cpu-accounting.js';

/** Writes one outbox row of a reservation; returns its id. */
async function addRow(pool: pg.Pool, eventId: string, topic: string, key: string): Promise<string> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO outbox (event_id, topic, message_key, payload)
     VALUES ($1, $2, $3, jsonb_build_object('eventId', $1::text, 'reservationId', $3::text)) RETURNING id`,
    [eventId, topic, key],
  );
  return rows[0]!.id;
}

/** A topic whose record batches may be at most 2,000 bytes (one partition), and its rows deleted at the end. */
async function smallTopic(t: Test, kafka: ReturnType<typeof createKafka>, pool: pg.Pool): Promise<{ topic: string; admin: kafkajs.Admin }> {
  const topic = uniqueName('relay-defer');
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '2000' }] }],
    waitForLeaders: true,
  });
  t.teardown(() => pool.query('DELETE FROM outbox WHERE topic = $1', [topic]).then(() => undefined));
  return { topic, admin };
}

/** Writes one outbox row of 5 kB, over smallTopic's limit for good; returns its id. */
async function addBigRow(pool: pg.Pool, eventId: string, topic: string, key: string): Promise<string> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO outbox (event_id, topic, message_key, payload)
     VALUES ($1, $2, $3, jsonb_build_object('eventId', $1::text, 'reservationId', $3::text, 'seats', repeat('x', 5000))) RETURNING id`,
    [eventId, topic, key],
  );
  return rows[0]!.id;
}

/** Stops the local Kafka broker (SIGSTOP); returns what resumes it (also at the test's end). */
function pauseKafka(t: Test): () => void {
  const kafkaPid = localServicePids(process.cwd())['kafka']?.[0];
  if (kafkaPid === undefined) throw new Error('hack/infra.sh status names no Kafka process');
  process.kill(kafkaPid, 'SIGSTOP');
  let resumed = false;
  const resume = () => {
    if (!resumed) process.kill(kafkaPid, 'SIGCONT');
    resumed = true;
  };
  t.teardown(resume);
  return resume;
}

t.test('two relays draining one outbox publish every row exactly once', async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-test', log: silentLogger });
  // A topic of its own: no engine of the stack relays it, so the two relays below are the only ones.
  const topic = uniqueName('relay-two');
  t.teardown(() => pool.query('DELETE FROM outbox WHERE topic = $1', [topic]).then(() => undefined));

  const eventId = uniqueName('relay');
  const keys = Array.from({ length: 1200 }, (_, i) => `r_${eventId}_${i}`);
  const relays = [1, 2].map(
    () =>
      new OutboxRelay({
        pool,
        connect: () => openProducerSession(kafka, topic),
        topic,
        log: silentLogger,
        options: { batchSize: 100, pauseMs: 10, idleMs: 10, maxBackoffMs: 1000 },
      }),
  );
  t.teardown(() => Promise.all(relays.map((relay) => relay.stop())).then(() => undefined));
  // Both sessions open (and the topic made) before there is anything to claim: neither can drain it all while the other connects.
  for (const relay of relays) t.equal(await relay.publishOnce(), 0);
  await pool.query(
    `INSERT INTO outbox (event_id, topic, message_key, payload)
     SELECT $1, $2, k, jsonb_build_object('eventId', $1::text, 'reservationId', k) FROM unnest($3::text[]) AS k`,
    [eventId, topic, keys],
  );
  // Both relays claim rounds concurrently until the event's rows are all published.
  const drain = async (relay: OutboxRelay) => {
    for (;;) {
      const left = await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE event_id = $1 AND published_at IS NULL', [
        eventId,
      ]);
      if (Number(left.rows[0]?.n) === 0) return;
      await relay.publishOnce();
    }
  };
  await Promise.all(relays.map(drain));
  const counts = relays.map((r) => r.published);
  t.ok(
    counts.every((n) => n > 0),
    `both relays published (${counts.join(' + ')} rows)`,
  );
  t.equal(counts[0]! + counts[1]!, keys.length, 'between them, each row once');
  const onTopic = await keysToEndOfTopic(topic);
  t.equal(onTopic.length, keys.length, 'no row was published twice (the whole topic read)');
  t.same([...onTopic].sort(), [...keys].sort(), 'every row was published');
  // Each on the partition the relay gave it (kafkajs's default placement for its key): with each
  // key once on the topic, every partition holds as many messages as the relay placed on it.
  const admin = kafka.admin();
  await admin.connect();
  try {
    const partitions = await topicPartitionCount(admin, topic);
    const placed = new Map<number, number>();
    for (const key of keys) {
      const partition = defaultPartition(topic, key, partitions);
      placed.set(partition, (placed.get(partition) ?? 0) + 1);
    }
    const held = (await admin.fetchTopicOffsets(topic)).map(({ partition, low, high }) => [partition, Number(high) - Number(low)]);
    t.same(
      held.filter(([, n]) => n! > 0).sort((a, b) => a[0]! - b[0]!),
      [...placed].sort((a, b) => a[0] - b[0]),
      `each of the ${partitions} partitions holds as many messages as the relay placed on it`,
    );
  } finally {
    await admin.disconnect();
  }
});

t.test(
  'a send is made of at most MAX_SEND_BYTES of rows: rows too big for one batch together are published, not refused for ever',
  async (t) => {
    const config = testConfig();
    const pool = await testDatabase();
    t.teardown(() => pool.end());
    const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-bytes-test', log: silentLogger });
    // One partition: all rows in one record batch, which the broker refuses over 1 MB (message.max.bytes).
    const topic = uniqueName('relay-bytes');
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopic(admin, topic, 1);
    await admin.disconnect();
    t.teardown(() => pool.query('DELETE FROM outbox WHERE topic = $1', [topic]).then(() => undefined));
    const eventId = uniqueName('relay');
    // Four block bookings of 400 kB each (a reservation of thousands of seats names every one).
    const keys = Array.from({ length: 4 }, (_, i) => `r_${eventId}_${i}`);
    await pool.query(
      `INSERT INTO outbox (event_id, topic, message_key, payload)
     SELECT $1, $2, k, jsonb_build_object('eventId', $1::text, 'reservationId', k, 'seats', repeat('x', 400 * 1024)) FROM unnest($3::text[]) AS k`,
      [eventId, topic, keys],
    );
    const relay = new OutboxRelay({ pool, connect: () => openProducerSession(kafka, topic), topic, log: silentLogger });
    t.teardown(() => relay.stop());
    let rounds = 0;
    while (relay.published < keys.length && rounds < 10) {
      rounds++;
      await relay.publishOnce();
    }
    t.equal(relay.published, keys.length, `all four published, in ${rounds} rounds`);
    t.equal(rounds, 4, 'one 400 kB row a send: two would be over 512 kB');
    t.same([...(await keysToEndOfTopic(topic))].sort(), keys, 'each once on the topic');
  },
);

t.test(
  'a row Kafka refuses for its size is deferred, the rows after it are published, and it goes out once the topic takes it',
  async (t) => {
    const config = testConfig();
    const pool = await testDatabase();
    t.teardown(() => pool.end());
    const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-defer-test', log: silentLogger });
    const { topic, admin } = await smallTopic(t, kafka, pool);
    const eventId = uniqueName('relay');
    const key = (name: string) => `r_${eventId}_${name}`;
    await addRow(pool, eventId, topic, key('before'));
    const big = await addBigRow(pool, eventId, topic, key('big'));
    for (const name of ['after-1', 'after-2']) await addRow(pool, eventId, topic, key(name));
    const logged: string[] = [];
    const log = {
      ...silentLogger,
      error: (_fields: unknown, message: string) => void logged.push(message),
    } as unknown as typeof silentLogger;
    const deferMs = 3000;
    const relay = new OutboxRelay({
      pool,
      connect: () => openProducerSession(kafka, topic),
      topic,
      log,
      options: { batchSize: 100, pauseMs: 10, idleMs: 10, maxBackoffMs: 1000, deferMs },
    });
    t.teardown(() => relay.stop());

    // Each refused send halves the claim, and goes again without backoff: the row at fault ends up
    // alone, and is deferred; the others go.
    let rounds = 0;
    while (relay.published < 3 && rounds < 12) {
      rounds++;
      await relay.publishOnce();
    }
    t.equal(relay.published, 3, `the three small rows are published (${rounds} rounds)`);
    t.same(
      [...(await keysToEndOfTopic(topic))].sort(),
      [key('after-1'), key('after-2'), key('before')],
      'on the topic: all but the big row',
    );
    const { rows } = await pool.query<{ published: boolean; deferred: boolean; last_error: string | null }>(
      `SELECT published_at IS NOT NULL AS published, deferred_until > now() AS deferred, last_error FROM outbox WHERE id = $1`,
      [big],
    );
    t.match(rows[0], { published: false, deferred: true }, 'the big row is unpublished, and deferred');
    t.match(rows[0]?.last_error, /larger than the max message size/, 'its last_error says why');
    t.equal(logged.length, 1, 'its deferral is logged as an error, once');
    t.equal(await relay.publishOnce(), 0, 'while deferred, it is not claimed (nothing else to publish)');

    // The topic is mended; the row goes out once its deferral has passed.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        { type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: '100000' }] },
      ],
    });
    const deadline = Date.now() + deferMs + 20_000;
    while (relay.published < 4 && Date.now() < deadline) {
      if ((await relay.publishOnce()) === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    t.equal(relay.published, 4, 'the big row is published once the broker takes it');
    t.same(
      [...(await keysToEndOfTopic(topic))].sort(),
      [key('after-1'), key('after-2'), key('before'), key('big')],
      'each row once on the topic',
    );
  },
);

t.test('a topic that refuses every row for its size: each is deferred, and past a few the rounds back off', async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-defer-all-test', log: silentLogger });
  const { topic } = await smallTopic(t, kafka, pool);
  const eventId = uniqueName('relay');
  const rows = MAX_DEFERRED_IN_A_ROW + 2;
  for (let i = 0; i < rows; i++) await addBigRow(pool, eventId, topic, `r_${eventId}_${i}`);
  const relay = new OutboxRelay({ pool, connect: () => openProducerSession(kafka, topic), topic, log: silentLogger });
  t.teardown(() => relay.stop());
  const deferred = async () =>
    Number(
      (await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE topic = $1 AND deferred_until > now()', [topic])).rows[0]?.n,
    );
  const refusals: string[] = [];
  for (let round = 0; round < 20 && (await deferred()) < rows; round++)
    await relay.publishOnce().catch((error: unknown) => refusals.push(String(error)));
  t.equal(await deferred(), rows, 'every row is deferred: none holds the others back');
  t.equal(
    refusals.length,
    rows - MAX_DEFERRED_IN_A_ROW,
    `the rounds after ${MAX_DEFERRED_IN_A_ROW} deferrals fail, so the run loop backs off`,
  );
  t.match(refusals[0], /larger than the max message size/, 'with the refusal');
});

t.test('a row deferred again and again (a quiet topic) never holds back the rows that come after it', async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-defer-again-test', log: silentLogger });
  const { topic } = await smallTopic(t, kafka, pool);
  const eventId = uniqueName('relay');
  const big = await addBigRow(pool, eventId, topic, `r_${eventId}_big`);
  const relay = new OutboxRelay({
    pool,
    connect: () => openProducerSession(kafka, topic),
    topic,
    log: silentLogger,
    options: { batchSize: 100, pauseMs: 10, idleMs: 10, maxBackoffMs: 1000, deferMs: 200 },
  });
  t.teardown(() => relay.stop());
  // The big row alone on its topic: refused, deferred, due again, refused again… more times than
  // MAX_DEFERRED_IN_A_ROW, with no send succeeding in between.
  const attempts = async () =>
    Number((await pool.query<{ attempts: number }>('SELECT attempts FROM outbox WHERE id = $1', [big])).rows[0]?.attempts);
  for (let round = 0; round < 50 && (await attempts()) < MAX_DEFERRED_IN_A_ROW + 2; round++) {
    await relay.publishOnce().catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 60));
  }
  t.ok((await attempts()) >= MAX_DEFERRED_IN_A_ROW + 2, `the big row was refused ${await attempts()} times`);
  // A reservation that comes now is published all the same.
  await addRow(pool, eventId, topic, `r_${eventId}_small`);
  let published = 0;
  for (let round = 0; round < 10 && published === 0; round++) published += await relay.publishOnce().catch(() => 0);
  t.equal(published, 1, 'the small row is published');
  t.same(await keysToEndOfTopic(topic), [`r_${eventId}_small`], 'and it alone is on the topic');
});

t.test("a row meant for another topic (here, one that does not exist) is left alone and does not stall the relay's own", async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-test', log: silentLogger });

  const eventId = uniqueName('relay');
  const elsewhere = uniqueName('no-such-topic');
  t.teardown(() => pool.query('DELETE FROM outbox WHERE event_id = $1', [eventId]).then(() => undefined));
  // The foreign row first: the oldest unpublished row, where a relay that took every topic starts.
  for (const [topic, key] of [
    [elsewhere, `r_${eventId}_foreign`],
    [config.reservationsTopic, `r_${eventId}_own`],
  ] as const) {
    await pool.query(
      `INSERT INTO outbox (event_id, topic, message_key, payload) VALUES ($1, $2, $3, jsonb_build_object('eventId', $1::text, 'reservationId', $3::text))`,
      [eventId, topic, key],
    );
  }
  const relay = new OutboxRelay({
    pool,
    connect: () => openProducerSession(kafka, config.reservationsTopic),
    topic: config.reservationsTopic,
    log: silentLogger,
  });
  t.teardown(() => relay.stop());
  for (let round = 0; round < 20; round++) {
    const { rows } = await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM outbox WHERE event_id = $1 AND topic = $2 AND published_at IS NULL',
      [eventId, config.reservationsTopic],
    );
    if (rows[0]!.n === 0) break;
    await relay.publishOnce(); // throws if it tried the foreign topic (kafkajs: unknown topic)
  }
  const { rows } = await pool.query<{ topic: string; published: boolean; attempts: number }>(
    'SELECT topic, published_at IS NOT NULL AS published, attempts FROM outbox WHERE event_id = $1 ORDER BY id',
    [eventId],
  );
  t.same(
    rows,
    [
      { topic: elsewhere, published: false, attempts: 0 },
      { topic: config.reservationsTopic, published: true, attempts: 1 },
    ],
    "the relay's own row is published; the foreign row was never claimed",
  );
  t.same(await reservationKeysOnTopic(eventId, 1), [`r_${eventId}_own`]);

  // The stranded row shows in the engine's metrics, with its age.
  const metrics = new EngineMetrics();
  const scrape = async () => (await metrics.registry.metrics()).split('\n');
  t.notOk(
    (await scrape()).some((line) => line.startsWith('sentinel_outbox_pending{')),
    'no backlog series before an engine relays',
  );
  metrics.outboxBacklog = () => relay.backlog();
  const lines = await scrape();
  t.ok(lines.includes(`sentinel_outbox_pending{topic="${elsewhere}"} 1`), 'the foreign topic has one pending row');
  const age = lines.find((line) => line.startsWith(`sentinel_outbox_oldest_pending_seconds{topic="${elsewhere}"} `));
  t.ok(age !== undefined && Number(age.split(' ')[1]) >= 0, `its age is reported (${age})`);
  t.ok(
    lines.some((line) => line.startsWith(`sentinel_outbox_pending{topic="${config.reservationsTopic}"} `)),
    "the relay's own topic is always listed",
  );
  metrics.outboxBacklog = () => Promise.reject(new Error('Postgres is down'));
  t.notOk(
    (await scrape()).some((line) => line.startsWith('sentinel_outbox_pending{')),
    'no stale series when the backlog cannot be read',
  );
});

t.test('a send that timed out after the broker took it does not make the rows of the next send vanish', async (t) => {
  // The broker dedupes an idempotent producer's batches by sequence numbers alone. Here a send
  // times out while the broker is stopped, and the broker appends it once it runs again; kafkajs
  // has rewound its sequence by then. A row sent next with that producer would carry the number of
  // the appended batch and be acknowledged as its duplicate without being written — the loss
  // `sentinel chaos` found after a Kafka restart. The relay sends it in a new session instead.
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  // A topic of its own with one partition: every row of this test is in one sequence.
  const topic = uniqueName('relay-timeout');
  const kafka = createKafka({
    brokers: config.kafkaBrokers,
    clientId: 'relay-timeout-test',
    log: silentLogger,
    tuning: { requestTimeout: 1000, retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 } },
  });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, topic, 1);
  await admin.disconnect();
  let sessions = 0;
  const relay = new OutboxRelay({
    pool,
    connect: () => {
      sessions++;
      return openProducerSession(kafka, topic);
    },
    topic,
    log: silentLogger,
  });
  t.teardown(() => relay.stop());
  t.teardown(() => pool.query('DELETE FROM outbox WHERE topic = $1', [topic]).then(() => undefined));

  const eventId = uniqueName('relay');
  const add = (key: string) => addRow(pool, eventId, topic, key);
  const [first, timedOut, next] = ['first', 'timed-out', 'next'].map((name) => `r_${eventId}_${name}`) as [string, string, string];

  await add(first);
  t.equal(await relay.publishOnce(), 1, 'a first row is published (the producer knows the partition now)');

  const timedOutId = await add(timedOut);
  const resume = pauseKafka(t);
  await t.rejects(relay.publishOnce(), 'the send times out while the broker is stopped');
  resume();
  t.same(
    [...(await reservationKeysOnTopic(eventId, 2, 30_000, 60_000, topic))].sort(),
    [first, timedOut].sort(),
    'the broker appended the timed-out send once it ran again',
  );
  // Another relay claimed the row meanwhile and published it (SKIP LOCKED): this relay's next
  // round has other rows — one, like the batch the broker appended.
  await pool.query('UPDATE outbox SET published_at = now() WHERE id = $1', [timedOutId]);
  await add(next);
  t.equal(await relay.publishOnce(), 1, 'the next row is sent');
  t.equal(sessions, 2, 'in a new producer session');
  t.same(
    [...(await reservationKeysOnTopic(eventId, 3, 20_000, 60_000, topic))].sort(),
    [first, timedOut, next].sort(),
    'and it is on the topic',
  );
});

t.test('a send that hangs is given up after sendDeadlineMs, and its rows are free for another relay at once', async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  // The client's own settings: a request waits 10 s for its answer, and is retried.
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-deadline-test', log: silentLogger });
  const topic = uniqueName('relay-deadline');
  t.teardown(() => pool.query('DELETE FROM outbox WHERE topic = $1', [topic]).then(() => undefined));
  const relay = new OutboxRelay({
    pool,
    connect: () => openProducerSession(kafka, topic),
    topic,
    log: silentLogger,
    options: { batchSize: 100, pauseMs: 10, idleMs: 10, maxBackoffMs: 1000, sendDeadlineMs: 1500 },
  });
  t.teardown(() => relay.stop());
  const eventId = uniqueName('relay');
  await addRow(pool, eventId, topic, `r_${eventId}_first`);
  t.equal(await relay.publishOnce(), 1, 'a first row is published (the session is open)');
  await addRow(pool, eventId, topic, `r_${eventId}_stuck`);
  const resume = pauseKafka(t);
  const started = Date.now();
  await t.rejects(relay.publishOnce(), /no answer within 1500 ms/, 'the send is given up on');
  const tookMs = Date.now() - started;
  t.ok(tookMs < 5000, `after ${tookMs} ms, not the client's 10 s and its retries`);
  const free = await pool.query('SELECT id FROM outbox WHERE topic = $1 AND published_at IS NULL FOR UPDATE SKIP LOCKED', [topic]);
  t.equal(free.rowCount, 1, 'its row is unlocked: another relay can claim it');
  resume();
});

t.test('after a round that found nothing, the relay looks with one plain read before it opens a transaction', async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-idle-test', log: silentLogger });
  const topic = uniqueName('relay-idle');
  // The relay's transactions check a client out of the pool; its plain reads go through pool.query.
  let checkouts = 0;
  const counted = { query: pool.query.bind(pool), connect: () => (checkouts++, pool.connect()) } as unknown as typeof pool;
  const relay = new OutboxRelay({ pool: counted, connect: () => openProducerSession(kafka, topic), topic, log: silentLogger });
  t.teardown(() => relay.stop());

  t.equal(await relay.publishOnce(), 0, 'nothing for its topic');
  t.equal(checkouts, 1, 'the first round claims in a transaction');
  for (let i = 0; i < 3; i++) t.equal(await relay.publishOnce(), 0);
  t.equal(checkouts, 1, 'idle rounds only looked');

  const eventId = uniqueName('relay-idle');
  await pool.query(`INSERT INTO outbox (event_id, topic, message_key, payload) VALUES ($1, $2, $3, '{}')`, [
    eventId,
    topic,
    `r_${eventId}`,
  ]);
  t.equal(await relay.publishOnce(), 1, 'a row appears: the look finds it and the round publishes it');
  t.equal(checkouts, 2);
  const { rows } = await pool.query<{ published: boolean }>(
    'SELECT published_at IS NOT NULL AS published FROM outbox WHERE event_id = $1',
    [eventId],
  );
  t.same(rows, [{ published: true }]);
});

t.test("a backlog under another topic is not read through by the relay's look and claim", async (t) => {
  // A database of its own: the shared one's outbox holds every other test's rows.
  const pool = await ownDatabase(t, 'relay_topics');
  const stranded = 20_000;
  await pool.query(
    `INSERT INTO outbox (event_id, topic, message_key, payload)
     SELECT 'e', 'stranded', 'r_' || i, '{}' FROM generate_series(1, $1) AS i`,
    [stranded],
  );
  await pool.query(
    `INSERT INTO outbox (event_id, topic, message_key, payload) SELECT 'e', 'mine', 'm_' || i, '{}' FROM generate_series(1, 3) AS i`,
  );
  await pool.query('ANALYZE outbox');
  /** Buffers (pages) the statement touched, and its rows, as EXPLAIN ANALYZE counts them. */
  const cost = async (sql: string, params: unknown[]) => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN'); // the claim locks what it returns: rolled back
      const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: Record<string, number> }] }>(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`,
        params,
      );
      const plan = rows[0]!['QUERY PLAN'][0].Plan;
      return { buffers: plan['Shared Hit Blocks']! + plan['Shared Read Blocks']!, rows: plan['Actual Rows']! };
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  };
  const look = await cost(RELAY_QUERIES.pending, ['mine']);
  const claim = await cost(RELAY_QUERIES.claim, [500, 'mine']);
  t.equal(claim.rows, 3, "the claim finds the topic's three rows");
  // Read through, the stranded rows are hundreds of pages (a heap read each, behind an index on id).
  t.ok(look.buffers < 20, `the look read ${look.buffers} pages with ${stranded} rows of another topic pending`);
  t.ok(claim.buffers < 20, `the claim read ${claim.buffers} pages with ${stranded} rows of another topic pending`);
});
