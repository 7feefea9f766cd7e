import t from 'tap';
import { ALL_SALES, decodeSales, encode, salesSubject, sendWithin } from '../../../src/engine/protocol.js';

const bytes = (text: string) => new TextEncoder().encode(text);

t.test('sales announcements: what a shard sends is what an ingress reads, and nothing else is', async (t) => {
  const sales = { seats: ['A-1-1', 'A-1-2', 'B-3-4'], buyers: ['alice', 'alice', 'bob'] };
  t.same(decodeSales(encode(sales)), sales);
  t.equal(salesSubject('club-night'), 'sentinel-sales.club-night');
  t.equal(ALL_SALES, `${salesSubject('')}*`, 'one wildcard subscription hears every event');
  for (const [what, text] of [
    ['not JSON', '{"seats":'],
    ['null', 'null'],
    ['a list', '[]'],
    ['no buyers', '{"seats":["A-1-1"]}'],
    ['more seats than buyers', '{"seats":["A-1-1","A-1-2"],"buyers":["alice"]}'],
    ['a seat that is no string', '{"seats":[7],"buyers":["alice"]}'],
    ['a buyer that is no string', '{"seats":["A-1-1"],"buyers":[null]}'],
  ] as const) {
    t.equal(decodeSales(bytes(text)), undefined, what);
  }
});

t.test('sendWithin cuts a batch until every message fits the largest the server takes', async (t) => {
  const items = ['a'.repeat(100), 'b'.repeat(10), 'c'.repeat(10), 'd'.repeat(300), 'e'.repeat(10)];
  const encodeItems = (part: readonly string[]) => new TextEncoder().encode(JSON.stringify(part));
  const sent: { size: number; from: number; to: number }[] = [];
  sendWithin(items, encodeItems, 200, (data, from, to) => sent.push({ size: data.length, from, to }));
  t.same(
    sent.map(({ from, to }) => [from, to]),
    [
      [0, 3],
      [3, 4],
      [4, 5],
    ],
    'halves until each fits: in order, every item once',
  );
  t.ok(
    sent.filter(({ from, to }) => to - from > 1).every(({ size }) => size <= 200),
    'every message of several items fits',
  );
  t.ok(sent.find(({ from }) => from === 3)!.size > 200, 'an item too large on its own is sent alone (to fail alone)');

  const whole: [number, number][] = [];
  sendWithin(items, encodeItems, undefined, (_, from, to) => whole.push([from, to]));
  t.same(whole, [[0, 5]], 'no limit known: one message');
  const fits: [number, number][] = [];
  sendWithin(items, encodeItems, 10_000, (_, from, to) => fits.push([from, to]));
  t.same(fits, [[0, 5]], 'a batch that fits: one message');
});
