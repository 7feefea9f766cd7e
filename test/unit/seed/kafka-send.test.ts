/**
 * The seed design's Kafka send (createSeedKafkaSend): the records sent during one event-loop turn
 * go in one produce request, as the Java producer's accumulator would send them, and each caller
 * still awaits its own acknowledgement — or fails with the request that carried its record.
 */
import type { Message, ProducerRecord, RecordMetadata } from 'kafkajs';
import t from 'tap';
import { createSeedKafkaSend } from '../../../src/seed/seed-app.js';

/** A producer whose requests the test answers: each `send` waits until the test settles it. */
function heldProducer() {
  const requests: { record: ProducerRecord; ack: () => void; fail: (error: Error) => void }[] = [];
  const producer = {
    send: (record: ProducerRecord) =>
      new Promise<RecordMetadata[]>((resolve, reject) => {
        requests.push({ record, ack: () => resolve([]), fail: reject });
      }),
  };
  return { producer, requests };
}

const message = (n: number): Message => ({ key: `r${n}`, value: `v${n}` });
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Whether a promise has settled yet (after the microtasks already queued). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

t.test('the winners of one turn share one request, and each is answered only when it is acknowledged', async (t) => {
  const { producer, requests } = heldProducer();
  let counted = 0;
  const send = createSeedKafkaSend(producer, 'seed.topic', () => (counted += 1));
  const acks = [1, 2, 3].map((n) => send(message(n)));
  await turn();
  t.equal(requests.length, 1, 'one produce request');
  t.same(
    requests[0]!.record,
    { topic: 'seed.topic', acks: -1, messages: [message(1), message(2), message(3)] },
    'all three records, acks=all',
  );
  t.equal(counted, 1, 'counted as one request');
  for (const ack of acks) t.notOk(await settled(ack), 'no caller is answered before the broker acknowledges');
  requests[0]!.ack();
  t.same(await Promise.all(acks), [undefined, undefined, undefined], 'every caller is answered');
});

t.test('a failed request fails every caller whose record it carried, and only those', async (t) => {
  const { producer, requests } = heldProducer();
  const send = createSeedKafkaSend(producer, 'seed.topic');
  const failing = [1, 2, 3].map((n) => send(message(n)));
  await turn();
  const later = send(message(4));
  requests[0]!.fail(new Error('broker down'));
  for (const outcome of await Promise.allSettled(failing)) t.match(outcome, { status: 'rejected', reason: { message: 'broker down' } });
  await turn();
  t.equal(requests.length, 2, 'a record sent in a later turn goes in a request of its own');
  t.same(requests[1]!.record.messages, [message(4)]);
  requests[1]!.ack();
  await t.resolves(later, 'and is answered by it');
});

t.test('records of separate turns are separate requests; a turn with many records is split at 64', async (t) => {
  const sizes: number[] = [];
  const send = createSeedKafkaSend(
    {
      send: async (record: ProducerRecord) => {
        sizes.push(record.messages.length);
        return [];
      },
    },
    'seed.topic',
  );
  await send(message(1));
  await send(message(2));
  t.same(sizes, [1, 1], 'one request per turn');
  await Promise.all(Array.from({ length: 130 }, (_, n) => send(message(n))));
  t.same(sizes.slice(2), [64, 64, 2], 'about what one Java produce request carries (batch.size) at most');
});
