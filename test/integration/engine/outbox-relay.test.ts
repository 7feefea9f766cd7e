import t from 'tap';
import { createIdempotentProducer, createKafka, ensureTopic } from '../../../src/adapters/kafka/client.js';
import { OutboxRelay } from '../../../src/engine/outbox-relay.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { testDatabase } from '../../support/stack.js';
import { reservationKeysOnTopic } from '../../support/topic.js';

t.test('two relays draining one outbox publish every row exactly once', async (t) => {
  const config = testConfig();
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'relay-test', log: silentLogger });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, config.reservationsTopic);
  await admin.disconnect();
  const producers = [createIdempotentProducer(kafka), createIdempotentProducer(kafka)];
  await Promise.all(producers.map((p) => p.connect()));
  t.teardown(() => Promise.all(producers.map((p) => p.disconnect())).then(() => undefined));

  const eventId = uniqueName('relay');
  const keys = Array.from({ length: 1200 }, (_, i) => `r_${eventId}_${i}`);
  await pool.query(
    `INSERT INTO outbox (event_id, topic, message_key, payload)
     SELECT $1, $2, k, jsonb_build_object('eventId', $1::text, 'reservationId', k) FROM unnest($3::text[]) AS k`,
    [eventId, config.reservationsTopic, keys],
  );
  const relays = producers.map((p) => new OutboxRelay(pool, p, silentLogger, { batchSize: 100, idleMs: 10, maxBackoffMs: 1000 }));
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
  // (Engines running beside this test relay too, so the split between relays is not asserted;
  // that nothing is published twice, whoever published it, is.)
  t.ok(
    relays.some((r) => r.published > 0),
    `the relays published ${relays.map((r) => r.published).join(' + ')} rows`,
  );
  const onTopic = await reservationKeysOnTopic(eventId, keys.length);
  t.equal(onTopic.length, keys.length, 'no row was published twice');
  t.same([...onTopic].sort(), [...keys].sort(), 'every row was published');
});
