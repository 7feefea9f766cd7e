import fc from 'fast-check';
import t from 'tap';
import { assignShards, shardKey, type ShardRef } from '../../../src/engine/assignment.js';

const shards = (eventId: string, n: number): ShardRef[] => Array.from({ length: n }, (_, shard) => ({ eventId, shard }));

t.test('8 shards over 2 engines: 4 each; over 3: 3, 3, 2', async (t) => {
  const all = shards('ev', 8);
  t.same(
    ['a', 'b'].map((e) => assignShards(all, ['b', 'a'], e).length),
    [4, 4],
  );
  t.same(
    ['a', 'b', 'c'].map((e) => assignShards(all, ['c', 'a', 'b'], e).length),
    [3, 3, 2],
  );
  t.same(assignShards(all, ['a'], 'zzz'), [], 'an engine not in the membership owns nothing');
});

t.test('every shard has exactly one owner, counts differ by at most one, result is order-independent', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('e1', 'e2', 'e3'), fc.integer({ min: 1, max: 20 })), { minLength: 1, maxLength: 3 }),
      fc.uniqueArray(fc.stringMatching(/^[a-z]{1,4}$/), { minLength: 1, maxLength: 6 }),
      (events, engines) => {
        const all = [...new Map(events).entries()].flatMap(([e, n]) => shards(e, n));
        const owned = engines.map((e) => assignShards(all, engines, e));
        const keys = owned.flat().map(shardKey);
        if (new Set(keys).size !== keys.length || keys.length !== all.length) return false;
        const counts = owned.map((o) => o.length);
        if (Math.max(...counts) - Math.min(...counts) > 1) return false;
        const reversed = engines.map((e) => assignShards([...all].reverse(), [...engines].reverse(), e).map(shardKey));
        return JSON.stringify(reversed) === JSON.stringify(owned.map((o) => o.map(shardKey)));
      },
    ),
    { numRuns: 500 },
  );
  t.pass('property held for 500 random memberships');
});
