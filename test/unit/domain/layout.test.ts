import t from 'tap';
import { parseSeatId, sectionCapacity, seatIdOf, seatsOfSection, totalCapacity, validateLayout } from '../../../src/domain/index.js';

const ok = {
  sections: [{ id: 'A', name: 'Stalls', priceTier: 'gold', rows: [{ id: '1', seats: 3 }] }],
  pools: [{ id: 'GA', capacity: 100 }],
};

function errorsOf(input: unknown): { path: string; message: string }[] {
  const result = validateLayout(input);
  if (result.ok) throw new Error('expected errors');
  return [...result.errors];
}

t.test('a valid layout is normalized and frozen', async (t) => {
  const result = validateLayout({ ...ok, extra: true, sections: [{ ...ok.sections[0], colour: 'red' }] });
  t.ok(result.ok);
  if (!result.ok) return;
  t.same(result.layout, ok);
  t.notOk('colour' in result.layout.sections[0]!, 'unknown fields are dropped');
  t.ok(Object.isFrozen(result.layout) && Object.isFrozen(result.layout.sections[0]) && Object.isFrozen(result.layout.sections[0]!.rows));
});

t.test('missing sections or pools mean none', async (t) => {
  t.ok(validateLayout({ pools: [{ id: 'GA', capacity: 5 }] }).ok);
  t.ok(validateLayout({ sections: ok.sections }).ok);
});

t.test('every problem is reported with its path', async (t) => {
  t.same(errorsOf(null), [{ path: '', message: 'layout must be an object, got null' }]);
  t.same(errorsOf({ sections: [], pools: [] }), [{ path: '', message: 'layout has no sections and no pools: there is nothing to sell' }]);
  t.same(errorsOf({ sections: 'A' }), [{ path: 'sections', message: 'must be an array, got "A"' }]);

  const errors = errorsOf({
    sections: [
      {
        id: 'A',
        rows: [
          { id: '1', seats: 10 },
          { id: '1', seats: 0 },
        ],
      },
      { id: 'A', rows: [] },
      { id: 'B-2', rows: [{ id: 'x y', seats: 1.5 }] },
      { id: 'C', rows: [{ id: '1', seats: 10_001 }] },
      'D',
    ],
    pools: [
      { id: 'A', capacity: 10 },
      { id: 'GA', capacity: 0 },
      { id: 'GB', capacity: 10_000_001 },
      { id: 'GC', capacity: '5', name: 7 },
    ],
  });
  const byPath = new Map(errors.map((e) => [e.path, e.message]));
  t.match(byPath.get('sections[0].rows[1].id'), /duplicate row id "1"/);
  t.match(byPath.get('sections[0].rows[1].seats'), /row is empty/);
  t.match(byPath.get('sections[1].id'), /duplicate id "A": section id already used by sections\[0\]\.id/);
  t.match(byPath.get('sections[1].rows'), /section has no rows/);
  t.match(byPath.get('sections[2].id'), /letters or digits \(no '-'/);
  t.match(byPath.get('sections[2].rows[0].id'), /letters or digits/);
  t.match(byPath.get('sections[2].rows[0].seats'), /must be an integer, got number 1.5/);
  t.match(byPath.get('sections[3].rows[0].seats'), /at most 10000 seats per row/);
  t.match(byPath.get('sections[4]'), /must be an object/);
  t.match(byPath.get('pools[0].id'), /duplicate id "A": pool id already used by sections\[0\]\.id/);
  t.match(byPath.get('pools[1].capacity'), /at least 1/);
  t.match(byPath.get('pools[2].capacity'), /at most 10000000/);
  t.match(byPath.get('pools[3].capacity'), /must be an integer, got "5"/);
  t.match(byPath.get('pools[3].name'), /must be a string/);
});

t.test('absurd totals are refused', async (t) => {
  const rows = Array.from({ length: 101 }, (_, i) => ({ id: String(i), seats: 10_000 }));
  t.same(errorsOf({ sections: [{ id: 'A', rows }] }), [{ path: 'sections', message: 'at most 1000000 seats in one event, got 1010000' }]);
  t.match(errorsOf({ sections: [{ id: 'A'.repeat(17), rows: [{ id: '1', seats: 1 }] }] })[0]!.message, /1-16 letters or digits/);
});

t.test('seat ids', async (t) => {
  t.equal(seatIdOf('A', '12', 7), 'A-12-7');
  t.same(parseSeatId('A-12-7'), { section: 'A', row: '12', number: 7 });
  t.same(parseSeatId('Balcony-C-120'), { section: 'Balcony', row: 'C', number: 120 });
  for (const bad of ['A-12', 'A-12-0', 'A-12-07', 'A-12-x', '-12-7', 'A--7', 'A-1-2-3', 'A-12-', 'A-12-1234567', '']) {
    t.equal(parseSeatId(bad), null, `${JSON.stringify(bad)} is not a seat id`);
  }
});

t.test('capacity helpers', async (t) => {
  const result = validateLayout({
    sections: [
      {
        id: 'A',
        rows: [
          { id: '1', seats: 2 },
          { id: '2', seats: 3 },
        ],
      },
      { id: 'B', rows: [{ id: '1', seats: 4 }] },
    ],
    pools: [{ id: 'GA', capacity: 50 }],
  });
  if (!result.ok) throw new Error('layout');
  t.same(totalCapacity(result.layout), { seats: 9, places: 50, total: 59 });
  t.same(seatsOfSection(result.layout, 'A'), ['A-1-1', 'A-1-2', 'A-2-1', 'A-2-2', 'A-2-3']);
  t.equal(seatsOfSection(result.layout, 'Z'), undefined);
  t.equal(sectionCapacity(result.layout, 'B'), 4);
  t.equal(sectionCapacity(result.layout, 'Z'), 0);
});

t.test('a name is counted in characters (code points), as the CRD counts it: 200 emoji fit, 201 do not', async (t) => {
  const named = (name: string) => ({ sections: [{ ...ok.sections[0], name }], pools: [] });
  t.ok(validateLayout(named('🎟'.repeat(200))).ok, '400 UTF-16 units, 200 characters');
  t.same(
    errorsOf(named('🎟'.repeat(201))).map((e) => e.path),
    ['sections[0].name'],
  );
});
