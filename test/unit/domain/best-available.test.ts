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

function naive(g: SeatGrid, quantity: number): number {
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
  return fallback;
}

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
