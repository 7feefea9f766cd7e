import t from 'tap';
import { ALL_SALES, decodeReplies, decodeSales, encode, salesSubject, sendWithin, type ShardReply } from '../../../src/engine/protocol.js';

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

t.test('reply batches: entries of the protocol are kept, anything else is dropped — never thrown on, never assigned through', async (t) => {
  const held: ShardReply = {
    result: {
      ok: true,
      type: 'held',
      hold: { holdId: 'h1', customer: 'ann', seats: ['A-1-1'], quantity: 1, createdAt: 1, expiresAt: 2 },
    },
  };
  const replayed: ShardReply = {
    result: {
      ok: true,
      type: 'confirmed',
      reservation: { reservationId: 'r1', holdId: 'h1', customer: 'ann', seats: [], pool: 'floor', quantity: 2, confirmedAt: 3 },
    },
    replayed: true,
  };
  const refused: ShardReply = {
    result: { ok: false, type: 'unavailable', seats: ['A-1-1'], sold: ['A-1-1'], soldTo: ['bob'], message: 'taken' },
  };
  const failed: ShardReply = { error: { code: 'fenced', message: 'fenced', retryable: true } };
  const good = [
    [0, held],
    [1, replayed],
    [2, refused],
    [7, failed],
    [3, { result: { ok: false, type: 'not-serving', state: 'loading', retryable: true, message: 'loading' } }],
  ] as const;
  t.same(decodeReplies(encode({ replies: good })), { replies: good, dropped: 0 }, 'every kind of reply the protocol defines');

  const arrayProtoBefore = Object.getOwnPropertyNames(Array.prototype).sort();
  for (const [what, entry] of [
    ['a number', 1],
    ['null', null],
    ['a string', 'x'],
    ['an object', { index: 0, reply: held }],
    ['one element', [0]],
    ['three elements', [0, held, held]],
    ['a key for an index', ['__proto__', {}]],
    ['a key for an index, with a good reply', ['__proto__', held]],
    ['a string index', ['0', held]],
    ['a negative index', [-1, held]],
    ['a fractional index', [0.5, held]],
    ['a huge index', [1e300, held]],
    ['no reply', [0, null]],
    ['a reply that is a list', [0, [held]]],
    ['neither result nor error', [0, {}]],
    ['both result and error', [0, { ...held, ...failed }]],
    ['a result that is no object', [0, { result: 'held' }]],
    ['a result of no known type', [0, { result: { ok: true, type: 'teleported' } }]],
    ['a result type from the prototype', [0, { result: { ok: true, type: 'constructor' } }]],
    ['a result whose ok disagrees with its type', [0, { result: { ...refused.result, ok: true } }]],
    ['a result missing a field of its type', [0, { result: { ok: true, type: 'released' } }]],
    ['a hold without its seats', [0, { result: { ok: true, type: 'held', hold: { holdId: 'h', customer: 'c', quantity: 1 } } }]],
    ['sold seats that are no strings', [0, { result: { ok: false, type: 'unavailable', seats: [], sold: [1], message: '' } }]],
    ['a replayed flag that is not true', [0, { ...held, replayed: 'yes' }]],
    ['an error without its retryable flag', [0, { error: { code: 'x', message: 'y' } }]],
    ['an error that is a string', [0, { error: 'boom' }]],
  ] as const) {
    const data = bytes(JSON.stringify({ replies: [entry, [5, failed]] }));
    t.same(decodeReplies(data), { replies: [[5, failed]], dropped: 1 }, `${what}: dropped, the good entry kept`);
  }
  t.same(Object.getOwnPropertyNames(Array.prototype).sort(), arrayProtoBefore, 'nothing was assigned to Array.prototype');
  t.equal((Array.prototype as unknown as Record<string, unknown>).done, undefined);

  for (const [what, text] of [
    ['not JSON', '{"replies":'],
    ['null', 'null'],
    ['no replies', '{}'],
    ['replies that are no list', '{"replies":{"0":1}}'],
  ] as const) {
    t.throws(() => decodeReplies(bytes(text)), what);
  }
});
