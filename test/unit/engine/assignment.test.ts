import fc from 'fast-check';
import t from 'tap';
import { assignShards, shardKey, type ShardRef } from '../../../src/engine/assignment.js';

const shards = (eventId: string, n: number): ShardRef[] => Array.from({ length: n }, (_, shard) => ({ eventId, shard }));

/** Each shard's owner, as `event/shard` → engine. */
const owners = (all: readonly ShardRef[], engines: readonly string[]): Map<string, string> =>
  new Map(engines.flatMap((e) => assignShards(all, engines, e).map((ref) => [shardKey(ref), e] as const)));

const counts = (owned: Map<string, string>, engines: readonly string[]): number[] =>
  engines.map((e) => [...owned.values()].filter((o) => o === e).length).sort((a, b) => a - b);

t.test('8 shards over 2 engines: 4 each; over 3: 3, 3, 2', async (t) => {
  const all = shards('ev', 8);
  t.same(counts(owners(all, ['b', 'a']), ['a', 'b']), [4, 4]);
  t.same(counts(owners(all, ['c', 'a', 'b']), ['a', 'b', 'c']), [2, 3, 3]);
  t.same(assignShards(all, ['a'], 'zzz'), [], 'an engine not in the membership owns nothing');
  t.same(assignShards([], ['a'], 'a'), [], 'no shards, nothing to own');
  const twice = owners([...all, ...all.slice(0, 3)], ['b', 'a', 'b']);
  t.same(twice, owners(all, ['a', 'b']), 'a shard or an engine named twice counts once');
});

t.test("every shard has exactly one owner, each event's counts differ by at most one, result is order-independent", async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('e1', 'e2', 'e3'), fc.integer({ min: 1, max: 20 })), { minLength: 1, maxLength: 3 }),
      fc.uniqueArray(fc.stringMatching(/^[a-z]{1,4}$/), { minLength: 1, maxLength: 6 }),
      (events, engines) => {
        const sizes = new Map(events);
        const all = [...sizes].flatMap(([e, n]) => shards(e, n));
        const owned = engines.map((e) => assignShards(all, engines, e));
        const keys = owned.flat().map(shardKey);
        if (new Set(keys).size !== keys.length || keys.length !== all.length) return false;
        for (const event of sizes.keys()) {
          const perEngine = owned.map((o) => o.filter((ref) => ref.eventId === event).length);
          if (Math.max(...perEngine) - Math.min(...perEngine) > 1) return false;
        }
        const reversed = engines.map((e) =>
          assignShards([...all].reverse(), [...engines].reverse(), e)
            .map(shardKey)
            .sort(),
        );
        return JSON.stringify(reversed) === JSON.stringify(owned.map((o) => o.map(shardKey).sort()));
      },
    ),
    { numRuns: 500 },
  );
  t.pass('property held for 500 random memberships');
});

t.test("opening or closing an event never moves another event's shards", async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 16 }),
      fc.integer({ min: 1, max: 16 }),
      fc.uniqueArray(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { minLength: 1, maxLength: 6 }),
      (n, m, engines) => {
        const live = shards('live-sale', n);
        const before = owners(live, engines);
        for (const other of ['a-first', 'z-last']) {
          const after = owners([...live, ...shards(other, m)], engines);
          if ([...before].some(([key, owner]) => after.get(key) !== owner)) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass('property held for 300 random memberships');
});

/**
 * How many shards a change of membership moves between engines that stay — beyond the leaver's
 * own shards, or the newcomer's share. Dealing shards round-robin moved 33–66 % of them this way
 * in these cases; the rendezvous assignment moves 6–7 %. Fixed inputs, so the figures are exact.
 */
t.test("a change of membership moves few shards beyond the leaver's or the newcomer's", async (t) => {
  const runs = 200;
  for (const [n, size] of [
    [8, 3],
    [8, 4],
    [16, 4],
    [32, 6],
  ] as const) {
    let total = 0;
    let collateral = 0;
    for (let run = 0; run < runs; run++) {
      const all = shards(`event-${run}`, n);
      const engines = Array.from({ length: size }, (_, i) => `sentinel-engine-${run}-${i}`);
      const before = owners(all, engines);
      const leaver = engines[run % size]!;
      const afterLeave = owners(
        all,
        engines.filter((e) => e !== leaver),
      );
      const newcomer = `sentinel-engine-${run}-new`;
      const afterJoin = owners(all, [...engines, newcomer]);
      for (const [key, owner] of before) {
        if (owner !== leaver && afterLeave.get(key) !== owner) collateral++;
        if (afterJoin.get(key) !== owner && afterJoin.get(key) !== newcomer) collateral++;
      }
      total += 2 * n;
    }
    t.ok(collateral / total < 0.1, `${n} shards over ${size} engines: ${collateral} of ${total} shard-changes were collateral moves`);
  }
});
