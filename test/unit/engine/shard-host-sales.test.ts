/**
 * A shard host announces the seats each commit sold in as many messages as the server's
 * max_payload takes, and an ingress's sales listener learns every seat of them: a commit that sold
 * more than fit in one message was refused whole by the client (MaxPayloadExceeded) and announced
 * nothing. The real decider, on an in-memory NATS that refuses a payload over its max_payload as
 * nats.js does, and a store where every commit succeeds.
 */
import type { Msg, NatsConnection } from 'nats';
import t from 'tap';
import type { ShardCommand } from '../../../src/domain/commands.js';
import { ALL_SALES, decodeReplies, decodeSales, encode, salesSubject, shardSubject } from '../../../src/engine/protocol.js';
import { listenForSales, SoldSeats } from '../../../src/ingress/sold-seats.js';
import { testDecider, testShardHost } from '../../support/shard-host.js';
import { storedEvent } from '../../support/stored-event.js';

const SEATS = 40;
/** Far below NATS's default (1 MB), so that a commit of 40 one-seat reservations does not fit in one message. */
const MAX_PAYLOAD = 400;

const event = storedEvent({
  id: 'big-commit',
  displayName: 'Big commit',
  layout: { sections: [{ id: 'A', rows: [{ id: '1', seats: SEATS }] }], pools: [] },
});

t.test('a commit that sold more seats than one message holds announces them all, each message within max_payload', async (t) => {
  type Callback = (error: Error | null, msg: Msg) => void;
  const subscribers = new Map<string, Callback>();
  const sales: Uint8Array[] = [];
  let replies = 0;
  let answered: () => void;
  const allAnswered = new Promise<void>((resolve) => (answered = resolve));
  const nc = {
    subscribe: (subject: string, options: { callback: Callback }) => {
      subscribers.set(subject, options.callback);
      return { unsubscribe: () => subscribers.delete(subject) };
    },
    publish: (subject: string, data: Uint8Array) => {
      // nats.js refuses, in publish, a payload larger than the server's max_payload.
      if (data.length > MAX_PAYLOAD) throw new Error('MAX_PAYLOAD_EXCEEDED');
      if (subject === 'inbox') {
        replies += decodeReplies(data).replies.length;
        if (replies === SEATS) answered();
        return;
      }
      sales.push(data);
      const callback = subject.startsWith(salesSubject('')) ? subscribers.get(ALL_SALES) : undefined;
      callback?.(null, { subject, data } as unknown as Msg);
    },
    info: { max_payload: MAX_PAYLOAD },
  } as unknown as NatsConnection;

  const decider = testDecider({ ...event, customerLimit: SEATS });
  const commits: number[] = [];
  const host = testShardHost({
    eventId: event.id,
    rules: { holdTtlMs: event.holdTtlMs, customerLimit: SEATS },
    batchWindowMs: 5,
    decider,
    store: {
      commitBatch: async (_eventId, _shard, _epoch, _limit, batch) => {
        commits.push(batch.reservations.length);
        return { refused: new Map() };
      },
    },
    nc,
  });
  host.start();
  t.teardown(() => host.handOff());
  const sold = new SoldSeats();
  let heard = 0;
  listenForSales(nc, sold, (seats) => (heard += seats));

  const seats = Array.from({ length: SEATS }, (_, i) => `A-1-${i + 1}`);
  const buyerOf = (seat: string) => `buyer-${seat}`;
  // A caller waits to learn that every seat sold (as an ingress told `pending` does), before any is.
  const waited = sold.whenSold(event.id, seats, 2000).then(() => sold.sold(event.id, seats));
  // Each seat to its own buyer, in requests that the host decides together, so in one commit.
  const commands: ShardCommand[] = seats.map((seat) => ({ type: 'reserve', key: `k-${seat}`, customer: buyerOf(seat), seat }));
  for (let from = 0; from < SEATS; from += 10) {
    const data = encode({ requests: commands.slice(from, from + 10).map((command) => ({ command })) });
    subscribers.get(shardSubject(event.id, 0))!(null, { subject: shardSubject(event.id, 0), reply: 'inbox', data } as unknown as Msg);
  }
  await allAnswered;
  await new Promise((resolve) => setImmediate(resolve));

  t.same(commits, [SEATS], 'one commit sold every seat');
  t.ok(sales.length > 1, `announced in several messages (${sales.length})`);
  t.ok(
    sales.every((data) => data.length <= MAX_PAYLOAD),
    'each within max_payload',
  );
  const announced = sales.flatMap((data) => {
    const sale = decodeSales(data)!;
    return sale.seats.map((seat, i) => [seat, sale.buyers[i]]);
  });
  t.same(
    announced,
    seats.map((seat) => [seat, buyerOf(seat)]),
    'every seat once, with its buyer',
  );
  t.equal(heard, SEATS, 'the sales listener heard every seat');
  t.same(sold.sold(event.id, seats), seats, 'and the ingress knows every seat sold');
  t.match(sold.refusal(event.id, [seats.at(-1)!], 'someone-else'), { type: 'unavailable' }, 'so it refuses a later buyer of the last seat');
  t.same(await waited, seats, 'a caller waiting on every seat was let go with all of them known sold, from several messages');
});
