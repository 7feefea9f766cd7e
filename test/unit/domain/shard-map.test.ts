import fc from 'fast-check';
import t from 'tap';
import { checkShardCount, partitionContiguous, shardMap, ShardMapError, validateLayout, type Layout } from '../../../src/domain/index.js';
import { layoutOf, rows } from './support/fixtures.js';

const layoutArb = fc
  .record({
    sections: fc.array(fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 8 }), { minLength: 0, maxLength: 5 }),
    pools: fc.array(fc.integer({ min: 1, max: 500 }), { maxLength: 3 }),
  })
  .filter(({ sections, pools }) => sections.length + pools.length > 0)
  .map(({ sections, pools }) =>
    layoutOf({
      sections: sections.map((seats, s) => ({ id: `S${s}`, rows: seats.map((n, r) => ({ id: `R${r}`, seats: n })) })),
      pools: pools.map((capacity, p) => ({ id: `P${p}`, capacity }), {}),
    }),
  );

function units(layout: Layout): number {
  return layout.pools.length + layout.sections.reduce((n, s) => n + s.rows.length, 0);
}

const withCount = layoutArb.chain((layout) =>
  fc.record({ layout: fc.constant(layout), count: fc.integer({ min: 1, max: units(layout) }) }),
);

t.test('every seat and pool belongs to exactly one shard, rows unsplit, shards contiguous and non-empty', async (t) => {
  fc.assert(
    fc.property(withCount, ({ layout, count }) => {
      const map = shardMap(layout, count);
      const owner = new Map<string, number>();
      for (let shard = 0; shard < count; shard++) {
        const seats = map.seatsOfShard(shard);
        const pools = map.poolsOfShard(shard);
        if (seats.length + pools.length === 0) throw new Error(`shard ${shard} owns nothing`);
        for (const seat of seats) {
          if (owner.has(seat)) throw new Error(`seat ${seat} in two shards`);
          owner.set(seat, shard);
          if (map.shardOfSeat(seat) !== shard) throw new Error(`shardOfSeat(${seat}) disagrees`);
        }
        for (const pool of pools) if (map.shardOfPool(pool.id) !== shard) throw new Error(`shardOfPool(${pool.id})`);
        const slice = map.layoutOfShard(shard);
        const sliceSeats = slice.sections.flatMap((s) =>
          s.rows.flatMap((r) => Array.from({ length: r.seats }, (_, i) => `${s.id}-${r.id}-${i + 1}`)),
        );
        if (sliceSeats.join() !== seats.join()) throw new Error('layoutOfShard disagrees with seatsOfShard');
      }
      let previous = 0;
      for (const section of layout.sections) {
        for (const row of section.rows) {
          const shards = new Set(Array.from({ length: row.seats }, (_, i) => map.shardOfSeat(`${section.id}-${row.id}-${i + 1}`)));
          if (shards.size !== 1) throw new Error(`row ${section.id}-${row.id} split`);
          const shard = [...shards][0]!;
          if (shard < previous) throw new Error('shards are not contiguous in layout order');
          previous = shard;
        }
        const expected = [...new Set(section.rows.map((r) => map.shardOfSeat(`${section.id}-${r.id}-1`)))];
        if (JSON.stringify(map.shardsOfSection(section.id)) !== JSON.stringify(expected)) throw new Error('shardsOfSection');
      }
      const seatTotal = layout.sections.reduce((n, s) => n + s.rows.reduce((m, r) => m + r.seats, 0), 0);
      if (owner.size !== seatTotal) throw new Error('some seat has no shard');
    }),
    { numRuns: 300 },
  );
  t.pass('holds for every generated layout');
});

t.test('balanced: no shard weighs more than W/n + the heaviest unit', async (t) => {
  fc.assert(
    fc.property(withCount, ({ layout, count }) => {
      const map = shardMap(layout, count);
      const weights = [...layout.sections.flatMap((s) => s.rows.map((r) => r.seats)), ...layout.pools.map((p) => p.capacity)];
      const total = weights.reduce((a, b) => a + b, 0);
      const heaviest = Math.max(...weights);
      for (const shard of map.shards) {
        if (shard.weight > total / count + heaviest) throw new Error(`shard ${shard.shard} weighs ${shard.weight}`);
      }
      if (map.shards.reduce((n, s) => n + s.weight, 0) !== total) throw new Error('weights do not add up');
    }),
    { numRuns: 300 },
  );
  t.pass('balanced');
});

t.test('stable: the same layout and count give the same map, even re-validated', async (t) => {
  fc.assert(
    fc.property(withCount, ({ layout, count }) => {
      const again = validateLayout(JSON.parse(JSON.stringify(layout)));
      if (!again.ok) throw new Error('revalidation');
      const a = shardMap(layout, count);
      const b = shardMap(again.layout, count);
      if (JSON.stringify(a.shards) !== JSON.stringify(b.shards)) throw new Error('unstable');
    }),
    { numRuns: 100 },
  );
  const layout = layoutOf({ sections: [{ id: 'A', rows: rows(4, 10) }] });
  t.equal(shardMap(layout, 2), shardMap(layout, 2), 'cached per layout object');
});

t.test('a worked example', async (t) => {
  const layout = layoutOf({
    sections: [
      { id: 'A', rows: rows(4, 10) },
      { id: 'B', rows: rows(2, 20) },
    ],
    pools: [{ id: 'GA', capacity: 40 }],
  });
  const map = shardMap(layout, 3);
  t.same(
    map.shards.map((s) => [s.firstRow, s.endRow, s.firstPool, s.endPool, s.weight]),
    [
      [0, 4, 0, 0, 40],
      [4, 6, 0, 0, 40],
      [6, 6, 0, 1, 40],
    ],
  );
  t.same(map.shardsOfSection('A'), [0]);
  t.same(map.shardsOfSection('B'), [1]);
  t.equal(map.shardOfPool('GA'), 2);
  t.equal(map.shardOfSeat('B-2-20'), 1);
  t.equal(map.shardOfSeat('B-2-21'), undefined);
  t.equal(map.shardOfSeat('B-3-1'), undefined);
  t.equal(map.shardOfSeat('nonsense'), undefined);
  t.equal(map.shardsOfSection('Z'), undefined);
  t.equal(map.longestRowOfSection('B'), 20);
  t.same(map.rowOfSeat('A-2-5'), { index: 1, section: 'A', row: '2', seats: 10, shard: 0 });

  const spread = shardMap(layout, 7);
  t.same(spread.shardsOfSection('A'), [0, 1, 2, 3], 'a section spanning shards lists them best row first');
  t.throws(() => spread.seatsOfShard(7), ShardMapError);
});

t.test('shard count validation', async (t) => {
  const layout = layoutOf({ sections: [{ id: 'A', rows: rows(2, 10) }], pools: [{ id: 'GA', capacity: 5 }] });
  t.equal(checkShardCount(layout, 3), undefined);
  t.match(checkShardCount(layout, 4), /exceeds the 3 rows and pools/);
  t.match(checkShardCount(layout, 0), /integer ≥ 1/);
  t.match(checkShardCount(layout, 1.5), /integer ≥ 1/);
  t.throws(() => shardMap(layout, 4), { code: 'shard_count_invalid' });
});

t.test('partitionContiguous keeps every part non-empty even with one huge unit', async (t) => {
  t.same(partitionContiguous([1, 1, 1, 1000], 4), [0, 1, 2, 3, 4]);
  t.same(partitionContiguous([1000, 1, 1, 1], 2), [0, 1, 4]);
  t.same(partitionContiguous([5, 5, 5, 5], 2), [0, 2, 4]);
});

t.test('fast enough for a million seats', async (t) => {
  // The worst case for the mapping is the most rows: 1,000,000 seats in rows of one seat.
  const layout = layoutOf({ sections: Array.from({ length: 1000 }, (_, s) => ({ id: `S${s}`, rows: rows(1000, 1) })) });
  const started = performance.now();
  const map = shardMap(layout, 64);
  const elapsed = performance.now() - started;
  t.equal(
    map.shards.reduce((n, s) => n + s.seats, 0),
    1_000_000,
  );
  t.equal(map.shardOfSeat('S999-1000-1'), 63);
  t.ok(elapsed < 1000, `computed in ${elapsed.toFixed(0)} ms`);
  t.comment(`shardMap(1,000,000 seats in 1,000,000 rows, 64 shards): ${elapsed.toFixed(0)} ms`);
});
