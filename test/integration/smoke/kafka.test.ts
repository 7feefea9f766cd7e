import t from 'tap';
import { createIdempotentProducer, createKafka, ensureTopic } from '../../../src/adapters/kafka/client.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';

t.test('kafka: create a topic, produce idempotently, consume it back', async (t) => {
  const kafka = createKafka({ brokers: testConfig().kafkaBrokers, clientId: 'smoke', log: silentLogger });
  const topic = uniqueName('smoke');
  const admin = kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  await ensureTopic(admin, topic, 1);
  await ensureTopic(admin, topic, 1); // idempotent
  t.ok((await admin.listTopics()).includes(topic), 'topic exists');

  const producer = createIdempotentProducer(kafka);
  await producer.connect();
  t.teardown(() => producer.disconnect());
  await producer.send({ topic, acks: -1, messages: [{ key: 'r-1', value: 'confirmed' }] });

  const consumer = kafka.consumer({ groupId: uniqueName('smoke-group') });
  await consumer.connect();
  t.teardown(() => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  const received = await new Promise<{ key: string; value: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within 30s')), 30_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        clearTimeout(timer);
        resolve({ key: String(message.key), value: String(message.value) });
      },
    });
  });
  t.same(received, { key: 'r-1', value: 'confirmed' });
});
