/**
 * Reading the reservations topic: a value that is not a JSON object (a tombstone, a number, a
 * list, garbage) is no reservation of any event. It is counted and passed over, never thrown on
 * inside the consumer's batch handler.
 */
import t from 'tap';
import type { Reader } from '../../../src/jobs/verify/inventory-checks.js';
import { checkTopic, otherTopicsNote, TopicRead, type TopicReservation } from '../../../src/jobs/verify/topic.js';
import { Violations } from '../../../src/jobs/verify/violations.js';

t.test('values that are not JSON objects are counted as malformed and passed over', async (t) => {
  const read = new TopicRead();
  const reservation = { eventId: 'ev', reservationId: 'r1', holdId: 'h1', customer: 'a', seats: ['A-1-1'], quantity: 1 };
  for (const value of [null, '42', '[1]', 'null', '"text"', '{cut']) {
    t.doesNotThrow(() => read.add('ev', 'k', value === null ? null : Buffer.from(value)), String(value));
  }
  read.add('ev', 'r1', Buffer.from(JSON.stringify(reservation)));
  read.add('ev', 'r1', Buffer.from(JSON.stringify(reservation)));
  read.add('ev', 'o1', Buffer.from(JSON.stringify({ ...reservation, eventId: 'other' })));
  t.same(read.counts(), { messages: 2, unique: 1, duplicates: 1, skipped: 1, malformed: 6, fetched: 0 });
  t.same([...read.messages.keys()], ['r1']);
});

/**
 * The topic check decides, for each reservation missing from the topic verify read, by its outbox
 * rows: none is a violation; a row for that topic published before the read is a violation; one
 * not published yet is pending (checked again after the relay); rows only for other topics (engines
 * with another SENTINEL_RESERVATIONS_TOPIC) are not checked — never "published before verify read
 * the topic", which they were not, to this topic.
 */
t.test('reservations whose outbox rows are for other topics are not checked, and the topics are named', async (t) => {
  const reservation = (id: string, outboxTopics: string[]): TopicReservation => ({
    reservation_id: id,
    hold_id: `h-${id}`,
    customer: `c-${id}`,
    seats: ['A-1-1'],
    pool_id: null,
    quantity: 1,
    confirmed_at: new Date(0),
    outbox_topics: outboxTopics,
  });
  const rows = [
    reservation('on-topic', ['ours']),
    reservation('no-row', []),
    reservation('published', ['ours']),
    reservation('pending', ['ours']),
    reservation('old-1', ['old']),
    reservation('old-2', ['old']),
    reservation('both-elsewhere', ['old', 'other']),
    reservation('ours-and-old', ['old', 'ours']),
  ];
  const db: Reader = { query: async <R>() => ({ rows: rows as R[] }) };
  const read = new TopicRead();
  read.add(
    'ev',
    'on-topic',
    Buffer.from(
      JSON.stringify({
        eventId: 'ev',
        reservationId: 'on-topic',
        holdId: 'h-on-topic',
        customer: 'c-on-topic',
        seats: ['A-1-1'],
        quantity: 1,
      }),
    ),
  );
  const violations = new Violations();
  const check = await checkTopic(db, 'ev', 'ours', read, new Set(['published', 'old-1', 'old-2']), violations);
  t.same(
    check.pending.map((r) => r.reservation_id),
    ['pending', 'ours-and-old'],
    'rows for the topic not published yet: checked again after the relay',
  );
  t.same(
    violations.list().map((v) => v.message),
    [
      'reservation no-row of c-no-row is not on the topic: it has no outbox row',
      'reservation published of c-published is not on the topic: its outbox row was published before verify read the topic',
    ],
    'rows published to another topic are no violation on this one',
  );
  t.same(check.otherTopics, {
    reservations: 3,
    topics: new Map([
      ['old', 3],
      ['other', 1],
    ]),
  });
  t.equal(
    otherTopicsNote('ours', check.otherTopics),
    '3 reservations not on ours have outbox rows only for other topics: old (3), other (1). ' +
      'Not checked: verify reads ours (SENTINEL_RESERVATIONS_TOPIC), the engines that wrote them publish to those',
  );
  t.equal(
    otherTopicsNote('ours', { reservations: 1, topics: new Map([['old', 1]]) })?.startsWith('1 reservation not on ours has outbox rows'),
    true,
  );
  t.equal(otherTopicsNote('ours', { reservations: 0, topics: new Map() }), undefined, 'nothing to say when every row is for the topic');
});
