/**
 * `verify` reads only what it must of a shared topic. The topic holds a week of every event's
 * traffic; the event's messages lie in a few partitions, from its creation time on. A partition
 * with nothing in the read's range — all of it older than the event, or read to its end already
 * when the topic is read again for the reservations the relay had not published yet — must not be
 * fetched at all: verify's consumer group is new and subscribes from the beginning, so such a
 * partition, neither sought nor paused, was fetched and decoded from its log start and thrown away,
 * and on a large topic the read ran out of time ("did not reach its end", exit 3). Counted by
 * `counts.topic.fetched`; the verdict is the same either way.
 */
import t from 'tap';
import { createIdempotentProducer, createKafka } from '../../../src/adapters/kafka/client.js';
import { readEventFromTopic } from '../../../src/jobs/verify/topic.js';
import { verifyEvent } from '../../../src/jobs/verify/verify.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { provisionTestEvent, testDatabase } from '../../support/stack.js';

const config = testConfig();
const pool = await testDatabase();
t.teardown(() => pool.end());
const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'verify-partitions-test', log: silentLogger });
const admin = kafka.admin();
await admin.connect();
t.teardown(() => admin.disconnect());
const producer = createIdempotentProducer(kafka);
await producer.connect();
t.teardown(() => producer.disconnect());

/** Messages of other events in partition 0, all of them older than the event. */
const OLD = 2000;
/** Messages of other events in partition 2 before the event's own. */
const OLD_BEFORE = 500;
const TWO_DAYS_AGO = String(Date.now() - 2 * 86_400_000);

t.test('partitions with nothing to read are not fetched, in the first read nor in the recheck; the verdict stands', async (t) => {
  // Four partitions, none of them written by a relay: the test publishes its rows itself.
  const topic = uniqueName('verify-partitions');
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
  t.teardown(() => admin.deleteTopics({ topics: [topic] }).catch(() => undefined));
  t.teardown(() => pool.query('DELETE FROM outbox WHERE topic = $1', [topic]).then(() => undefined));

  /** `n` messages of another event, stamped two days ago, into `partition`. */
  const otherTraffic = async (partition: number, n: number) => {
    for (let sent = 0; sent < n; sent += 500) {
      const messages = Array.from({ length: Math.min(500, n - sent) }, (_, i) => ({
        partition,
        key: `old-${partition}-${sent + i}`,
        value: JSON.stringify({ eventId: 'an-old-event', reservationId: `old-${partition}-${sent + i}`, customer: 'x', seats: ['A-1-1'] }),
        timestamp: TWO_DAYS_AGO,
      }));
      await producer.send({ topic, messages });
    }
  };
  // Partition 0: nothing but old traffic (the timestamp lookup returns its high-water mark).
  // Partition 2: old traffic, then one of the event's messages. Partitions 1 and 3: empty so far.
  await otherTraffic(0, OLD);
  await otherTraffic(2, OLD_BEFORE);

  const ev = (await provisionTestEvent(pool, { holdTtlMs: 3_600_000 })).eventId;
  const shardOf = async (seat: string) =>
    (await pool.query<{ shard: number }>('SELECT shard FROM seats WHERE event_id = $1 AND seat_id = $2', [ev, seat])).rows[0]!.shard;
  const options = { brokers: config.kafkaBrokers, topic, eventId: ev, since: new Date(), timeoutMs: 30_000, log: silentLogger };

  // A topic where no partition has anything in the event's range: ended at once, nothing fetched.
  const started = Date.now();
  const nothing = await readEventFromTopic(options);
  t.ok(Date.now() - started < 3000, `nothing to read took ${Date.now() - started} ms`);
  t.same(nothing.counts(), { messages: 0, unique: 0, duplicates: 0, skipped: 0, malformed: 0, fetched: 0 });
  t.same(
    [...nothing.ends].sort(([a], [b]) => a - b),
    [
      [0, OLD],
      [1, 0],
      [2, OLD_BEFORE],
      [3, 0],
    ],
  );

  /** A confirmed hold and its reservation, as the engine writes them; its outbox row for `topic` unpublished. */
  const reservation = async (n: number, customer: string, seat: string) => {
    const [hold, id, shard] = [`${ev}-h${n}`, `${ev}-r${n}`, await shardOf(seat)];
    await pool.query(
      `INSERT INTO holds (hold_id, event_id, shard, customer, seats, quantity, state, created_at, expires_at, ended_at, reservation_id)
       VALUES ($1, $2, $3, $4, $5, 1, 'confirmed', now() - interval '1 minute', now() + interval '50 minutes', now(), $6)`,
      [hold, ev, shard, customer, [seat], id],
    );
    await pool.query(
      `INSERT INTO reservations (reservation_id, event_id, hold_id, shard, customer, seats, quantity, confirmed_at)
       VALUES ($1, $2, $3, $4, $5, $6, 1, now())`,
      [id, ev, hold, shard, customer, [seat]],
    );
    const payload = {
      type: 'reservation.confirmed',
      eventId: ev,
      shard,
      reservationId: id,
      holdId: hold,
      customer,
      seats: [seat],
      quantity: 1,
    };
    await pool.query('INSERT INTO outbox (event_id, topic, message_key, payload) VALUES ($1, $2, $3, $4)', [ev, topic, id, payload]);
    await pool.query("UPDATE seats SET state = 'sold', hold_id = $3 WHERE event_id = $1 AND seat_id = $2", [ev, seat, hold]);
    await pool.query('INSERT INTO customer_usage (event_id, customer, used) VALUES ($1, $2, 1)', [ev, customer]);
    return id;
  };
  /** What a relay does, into partition 1: send the row's message, then mark the row published. */
  const relay = async (key: string) => {
    const { rows } = await pool.query<{ payload: object }>('SELECT payload FROM outbox WHERE event_id = $1 AND message_key = $2', [
      ev,
      key,
    ]);
    await producer.send({ topic, messages: [{ partition: 1, key, value: JSON.stringify(rows[0]!.payload) }] });
    await pool.query('UPDATE outbox SET published_at = now() WHERE event_id = $1 AND message_key = $2', [ev, key]);
  };
  // r1 is on the topic before verify reads it; r2 is published only when verify, having read the
  // topic once, waits for the relay — and reads partition 1 on from where it stopped.
  const r1 = await reservation(1, 'ann', 'A-1-1');
  const r2 = await reservation(2, 'ben', 'A-1-2');
  await relay(r1);
  // A message of the event Postgres never heard of, in partition 2 after the old traffic.
  const phantom = { eventId: ev, reservationId: `${ev}-r-phantom`, holdId: 'h', customer: 'mallory', seats: ['A-2-1'], quantity: 1 };
  await producer.send({ topic, messages: [{ partition: 2, key: phantom.reservationId, value: JSON.stringify(phantom) }] });

  let relayed: Promise<void> | undefined;
  const report = await verifyEvent({
    eventId: ev,
    pool,
    logs: [],
    kafka: { brokers: config.kafkaBrokers, topic },
    ttlSlackMs: 2000,
    settleTimeoutMs: 1000,
    topicTimeoutMs: 30_000,
    log: silentLogger,
    onStatus: (message) => {
      if (message.includes('not published yet when the topic was read')) relayed ??= relay(r2);
    },
  });
  await relayed;
  t.ok(relayed, 'r2 was relayed while verify waited to read the topic again');

  // The verdict: the phantom, and nothing else; both reservations are on the topic.
  t.same(
    report.violations.map((v) => [v.check, v.message]),
    [['topic-unknown', `message ${phantom.reservationId} on the topic names a reservation Postgres does not have`]],
  );
  t.same(report.not_checked, []);
  t.match(report.counts.topic, { messages: 3, unique: 3, duplicates: 0, skipped: 0, malformed: 0, rechecked: 1 });
  // What it cost: the three messages of the event's range. Partition 0 (all older than the event)
  // and partition 2 below the event's creation were not fetched in the first read; nor were 0 and 2
  // in the recheck, which had only partition 1's new message to read.
  t.equal(report.counts.topic?.fetched, 3, `fetched ${report.counts.topic?.fetched} messages; ${OLD + OLD_BEFORE} are other events'`);

  // Read again from where it ended: only what arrived since is fetched (one old-event message into
  // partition 0 and r1 again into partition 1 — a duplicate), nothing of the logs before.
  const read = await readEventFromTopic(options);
  t.match(read.counts(), { messages: 3, unique: 3, skipped: 0, fetched: 3 });
  await otherTraffic(0, 1);
  await relay(r1);
  await readEventFromTopic(options, read);
  t.match(read.counts(), { messages: 4, unique: 3, duplicates: 1, skipped: 1, fetched: 5 });
});
