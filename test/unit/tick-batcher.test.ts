import t from 'tap';
import { TickBatcher } from '../../src/tick-batcher.js';

t.test('calls of one turn go out together per group, at most maxBatch per send, each answered with its own reply', async (t) => {
  const sends: { group: string; items: number[] }[] = [];
  const batcher = new TickBatcher<number, string>(3, async (group, items) => {
    sends.push({ group, items });
    return items.map((n) => `${group}:${n}`);
  });
  const replies = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.add(n % 2 ? 'odd' : 'even', n)));
  t.same(replies, ['odd:1', 'even:2', 'odd:3', 'even:4', 'odd:5']);
  t.same(sends, [
    { group: 'odd', items: [1, 3, 5] },
    { group: 'even', items: [2, 4] },
  ]);
  const many = await Promise.all(Array.from({ length: 7 }, (_, n) => batcher.add('g', n)));
  t.same(
    many,
    Array.from({ length: 7 }, (_, n) => `g:${n}`),
  );
  t.same(
    sends.slice(2).map((s) => s.items),
    [[0, 1, 2], [3, 4, 5], [6]],
    'split at maxBatch',
  );
  await batcher.add('g', 8);
  t.equal(sends.length, 6, 'a later turn is a send of its own');
});

t.test('a failed send fails its own callers only', async (t) => {
  const batcher = new TickBatcher<number, number>(10, (group, items) => {
    if (group === 'throws') throw new Error('thrown');
    if (group === 'rejects') return Promise.reject(new Error('rejected'));
    if (group === 'short') return Promise.resolve(items.slice(1));
    return Promise.resolve(items);
  });
  const outcomes = await Promise.allSettled([
    batcher.add('throws', 1),
    batcher.add('rejects', 2),
    batcher.add('short', 3),
    batcher.add('short', 4),
    batcher.add('fine', 5),
  ]);
  t.same(
    outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message)),
    ['thrown', 'rejected', 'batch of 2 answered with 1 replies', 'batch of 2 answered with 1 replies', 5],
  );
});
