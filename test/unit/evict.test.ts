import t from 'tap';
import { evictOldest } from '../../src/evict.js';

t.test('below 16 entries of capacity: exactly first in, first out, one at a time', async (t) => {
  const map = new Map<string, number>();
  for (let i = 0; i < 10; i++) {
    map.set(`k${i}`, i);
    evictOldest(map, 3);
    t.ok(map.size <= 3);
  }
  t.same([...map.keys()], ['k7', 'k8', 'k9']);
  map.delete('k8');
  map.set('k7', 70); // an update keeps its place; re-inserting moves it last
  map.set('k10', 10);
  evictOldest(map, 3);
  t.same([...map.keys()], ['k7', 'k9', 'k10']);
});

t.test('large capacities: never above it, the newest always kept, the oldest gone first', async (t) => {
  const map = new Map<number, number>();
  const capacity = 50_000;
  for (let i = 0; i < 200_000; i++) {
    map.set(i, i);
    evictOldest(map, capacity);
    if (map.size > capacity) t.fail(`size ${map.size} after ${i}`);
  }
  t.ok(map.size >= capacity - capacity / 16, `keeps at least 15/16 of the capacity (${map.size})`);
  const keys = [...map.keys()];
  t.equal(keys.at(-1), 199_999, 'the newest is kept');
  t.same(
    keys,
    Array.from({ length: keys.length }, (_, i) => 200_000 - keys.length + i),
    'what is kept is the newest, in order',
  );
});
