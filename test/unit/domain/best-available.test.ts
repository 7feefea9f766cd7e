import fc from 'fast-check';
import t from 'tap';
import { findBestPlacement, leavesOrphan, type SeatGrid } from '../../../src/domain/index.js';
import { fixture, holdBest, release, rows } from './support/fixtures.js';

/** A grid from rows written as strings: '.' available, 'x' taken. */
function grid(...rowText: string[]): SeatGrid {
  const state = Uint8Array.from(rowText.join('').split(''), (c) => (c === '.' ? 0 : 1));
  const starts: number[] = [];
  let at = 0;
  for (const text of rowText) {
    starts.push(at);
    at += text.length;
  }
  return {
    state,
    rowStart: Int32Array.from(starts),
    rowLength: Int32Array.from(rowText.map((r) => r.length)),
    rowFree: Int32Array.from(rowText.map((r) => r.split('').filter((c) => c === '.').length)),
    rowMaxRun: new Int32Array(rowText.length).fill(-1),
    rowMaxRunStart: new Int32Array(rowText.length),
    rowRunBelowMax: new Uint8Array(rowText.length),
    rowFirstFree: Int32Array.from(starts),
  };
}

t.test('placements by the rule', async (t) => {
  t.equal(findBestPlacement(grid('....'), 0, 1, 2, false), 0, 'leftmost, leaves two');
  t.equal(findBestPlacement(grid('...', '....'), 0, 2, 2, false), 3, 'skips a row where 2 of 3 would orphan one');
  t.equal(findBestPlacement(grid('...', 'x.x.'), 0, 2, 2, false), 0, 'falls back to the orphan placement');
  t.equal(findBestPlacement(grid('...', 'x.x.'), 0, 2, 2, true), -1, 'strict refuses it');
  t.equal(findBestPlacement(grid('x...x..'), 0, 1, 2, false), 5, 'an exact fit beats a run of three');
  t.equal(findBestPlacement(grid('xxxx'), 0, 1, 1, false), -1);
  t.equal(findBestPlacement(grid('.x.', '.'), 0, 2, 1, false), 0, 'a single seat fills a lone gap');
});

t.test('orphan detection', async (t) => {
  const g = grid('x....x');
  t.equal(leavesOrphan(g.state, 0, 6, 1, 3), true, 'leaves seat 5 alone');
  t.equal(leavesOrphan(g.state, 0, 6, 1, 4), false);
  t.equal(leavesOrphan(g.state, 0, 6, 2, 2), true, 'leaves seat 2 alone');
  t.equal(leavesOrphan(grid('...').state, 0, 3, 0, 2), true, 'the row end counts as a wall');
});

t.test('the run cache never hides a placement', async (t) => {
  // Random rows; a naive search must agree with the cached one after random changes.
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 5 }),
      fc.array(fc.record({ seat: fc.nat(80), quantity: fc.integer({ min: 1, max: 4 }) }), { maxLength: 20 }),
      (rowsFree, steps) => {
        const g = grid(...rowsFree.map((r) => r.map((free) => (free ? '.' : 'x')).join('')));
        for (const { seat, quantity } of steps) {
          const expected = naive(g, quantity);
          const got = findBestPlacement(g, 0, g.rowStart.length, quantity, false);
          if (got !== expected) throw new Error(`expected ${expected}, got ${got}`);
          // Flip one seat, keeping the counters as the inventory does.
          const index = seat % g.state.length;
          let row = 0;
          while (row + 1 < g.rowStart.length && g.rowStart[row + 1]! <= index) row++;
          g.rowFree[row]! += g.state[index] === 0 ? -1 : 1;
          g.state[index] = g.state[index] === 0 ? 1 : 0;
          g.rowMaxRun[row] = -1;
          if (g.state[index] === 0 && index < g.rowFirstFree[row]!) g.rowFirstFree[row] = index;
        }
      },
    ),
  );
  t.pass('agrees with a naive search');
});

function naive(g: SeatGrid, quantity: number, strict = false): number {
  let fallback = -1;
  for (let r = 0; r < g.rowStart.length; r++) {
    const start = g.rowStart[r]!;
    const end = start + g.rowLength[r]!;
    for (let s = start; s + quantity <= end; s++) {
      let free = true;
      for (let i = s; i < s + quantity; i++) if (g.state[i] !== 0) free = false;
      if (!free) continue;
      if (!leavesOrphan(g.state, start, end, s, quantity)) return s;
      if (fallback < 0) fallback = s;
    }
  }
  return strict ? -1 : fallback;
}

/** Sets seats [from, from+count) of the grid's row to `taken`, keeping the counters as the inventory's setSeat does. */
function setRange(g: SeatGrid, from: number, count: number, taken: boolean): void {
  for (let index = from; index < from + count && index < g.state.length; index++) {
    let row = 0;
    while (row + 1 < g.rowStart.length && g.rowStart[row + 1]! <= index) row++;
    if ((g.state[index] !== 0) === taken) continue;
    g.rowFree[row]! += taken ? -1 : 1;
    g.state[index] = taken ? 1 : 0;
    g.rowMaxRun[row] = -1;
    if (!taken && index < g.rowFirstFree[row]!) g.rowFirstFree[row] = index;
  }
}

/** The same seats with nothing learned about them: every row read afresh. */
function uncached(g: SeatGrid): SeatGrid {
  return {
    state: g.state.slice(),
    rowStart: g.rowStart,
    rowLength: g.rowLength,
    rowFree: g.rowFree.slice(),
    rowMaxRun: new Int32Array(g.rowStart.length).fill(-1),
    rowMaxRunStart: new Int32Array(g.rowStart.length),
    rowRunBelowMax: new Uint8Array(g.rowStart.length),
    rowFirstFree: g.rowStart.slice(),
  };
}

t.test('the cached search places exactly as the uncached one, through holds and releases', async (t) => {
  // Fragmented rows (runs of every length, many of exactly quantity + 1), then requests of mixed
  // quantities, strict or not, interleaved with the placements they take and random releases and
  // sales: the cache (kept across all of it) must never change an answer.
  const rowArb = fc.array(fc.oneof(fc.constant('.'), fc.constant('x'), fc.constant('...x'), fc.constant('..x'), fc.constant('....x')), {
    minLength: 1,
    maxLength: 10,
  });
  const stepArb = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('best' as const),
        quantity: fc.integer({ min: 1, max: 5 }),
        strict: fc.boolean(),
        take: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('release' as const), seat: fc.nat(400), count: fc.integer({ min: 1, max: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('sell' as const), seat: fc.nat(400), count: fc.integer({ min: 1, max: 2 }) }) },
  );
  fc.assert(
    fc.property(fc.array(rowArb, { minLength: 1, maxLength: 8 }), fc.array(stepArb, { maxLength: 40 }), (rowParts, steps) => {
      const g = grid(...rowParts.map((parts) => parts.join('')));
      for (const step of steps) {
        if (step.op !== 'best') {
          setRange(g, step.seat % g.state.length, step.count, step.op === 'sell');
          continue;
        }
        const { quantity, strict } = step;
        const expected = findBestPlacement(uncached(g), 0, g.rowStart.length, quantity, strict);
        const got = findBestPlacement(g, 0, g.rowStart.length, quantity, strict);
        if (got !== expected) throw new Error(`q=${quantity} strict=${strict}: expected ${expected}, got ${got}`);
        const oracle = naive(g, quantity, strict);
        if (got !== oracle) throw new Error(`q=${quantity} strict=${strict}: the naive search says ${oracle}, got ${got}`);
        if (got >= 0 && step.take) setRange(g, got, quantity, true);
      }
    }),
    { numRuns: 2000 },
  );
  t.pass('same placements');
});

t.test('a request does not read every fragmented row again', async (t) => {
  // 200 rows of runs of three: every row holds only fallbacks for 2 seats. Count the seats read.
  const g = grid(...Array.from({ length: 200 }, () => '...x...x...x...x...x...'));
  let reads = 0;
  const counted: SeatGrid = {
    ...g,
    state: new Proxy(g.state, {
      get(target, property, receiver) {
        if (typeof property === 'string' && /^\d+$/.test(property)) reads++;
        return Reflect.get(target, property, receiver) as unknown;
      },
    }),
  };
  const rowCount = g.rowStart.length;
  const first = findBestPlacement(counted, 0, rowCount, 2, false);
  t.equal(first, 0, 'the first fallback');
  const firstReads = reads;
  setRange(g, first, 2, true);
  reads = 0;
  t.equal(findBestPlacement(counted, 0, rowCount, 2, false), 4, 'the next fallback, in the same row');
  const secondReads = reads;
  t.ok(secondReads * 20 < firstReads, `the second request read ${secondReads} seats, the first ${firstReads}: only the changed row`);
  reads = 0;
  t.equal(findBestPlacement(counted, 0, rowCount, 2, true), -1, 'strict: none');
  t.ok(reads * 20 < firstReads, `strict read ${reads} seats`);
  reads = 0;
  t.equal(findBestPlacement(counted, 0, rowCount, 3, false), 4, 'three seats fit a run of three exactly');
  t.ok(reads < 30, `read ${reads} seats: only up to the placement`);
});

t.test('fills a 5,000-seat section completely, 4 by 4, and again after release', async (t) => {
  const { inventory } = fixture({ sections: [{ id: 'A', rows: rows(50, 100) }] }, { settings: { customerLimit: 4 } });
  const holds: string[] = [];
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 1250; i++) {
      const { result } = inventory.decide(holdBest(`c${i}`, 'A', 4), 1);
      if (result.type !== 'held') throw new Error(`hold ${i}: ${JSON.stringify(result)}`);
      holds.push(result.hold.holdId);
    }
    t.equal(inventory.counts().overall.available, 0, 'no seat left unsold');
    t.equal(inventory.decide(holdBest('late', 'A', 1), 1).result.type, 'unavailable');
    holds.forEach((holdId, i) => inventory.decide(release(`c${i}`, holdId), 2));
    holds.length = 0;
  }
});
