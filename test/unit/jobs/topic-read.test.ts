/**
 * Reading the reservations topic: a value that is not a JSON object (a tombstone, a number, a
 * list, garbage) is no reservation of any event. It is counted and passed over, never thrown on
 * inside the consumer's batch handler.
 */
import t from 'tap';
import { TopicRead } from '../../../src/jobs/verify/topic.js';

t.test('values that are not JSON objects are counted as malformed and passed over', async (t) => {
  const read = new TopicRead();
  const reservation = { eventId: 'ev', reservationId: 'r1', holdId: 'h1', customer: 'a', seats: ['A-1-1'], quantity: 1 };
  for (const value of [null, '42', '[1]', 'null', '"text"', '{cut']) {
    t.doesNotThrow(() => read.add('ev', 'k', value === null ? null : Buffer.from(value)), String(value));
  }
  read.add('ev', 'r1', Buffer.from(JSON.stringify(reservation)));
  read.add('ev', 'r1', Buffer.from(JSON.stringify(reservation)));
  read.add('ev', 'o1', Buffer.from(JSON.stringify({ ...reservation, eventId: 'other' })));
  t.same(read.counts(), { messages: 2, unique: 1, duplicates: 1, skipped: 1, malformed: 6 });
  t.same([...read.messages.keys()], ['r1']);
});
