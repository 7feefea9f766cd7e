import t from 'tap';
import { ALL_SALES, decodeSales, encode, salesSubject } from '../../../src/engine/protocol.js';

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
