/** The ingress's reads of committed state: a stampede of readers costs one query, briefly. */
import t from 'tap';
import { validateLayout } from '../../../src/domain/layout.js';
import { shardMap } from '../../../src/domain/shard-map.js';
import { InventoryReads, READ_CACHE_MS, SEAT_MAP_SQL } from '../../../src/ingress/inventory-reads.js';
import type { EventSpec } from '../../../src/engine/provision.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

function mapOf(spec: EventSpec) {
  const layout = validateLayout(spec.layout);
  if (!layout.ok) throw new Error('test layout invalid');
  return shardMap(layout.layout, spec.shardCount);
}

t.test('availability and seat maps: readers within READ_CACHE_MS share one read; later ones read again', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 2, layout: testLayout({ sections: 2, rows: 3, seats: 4 }) });
  const map = mapOf(spec);
  let clock = Date.now();
  const reads = new InventoryReads(pool, () => clock);
  const section = map.layout.sections[0]!.id;

  const rush = await Promise.all(Array.from({ length: 20 }, () => reads.seatMap(spec.eventId, map, section)));
  t.ok(rush[0] !== undefined && rush.every((answer) => answer === rush[0]), 'twenty readers at once: one answer, one read');
  t.equal(rush[0]!.rows.length, 3);
  const seat = rush[0]!.rows[0]!.seats[0]!.seat;
  await pool.query(`UPDATE seats SET state = 'sold', hold_id = 'test-hold', version = version + 1 WHERE event_id = $1 AND seat_id = $2`, [
    spec.eventId,
    seat,
  ]);
  clock += READ_CACHE_MS - 1;
  t.equal(await reads.seatMap(spec.eventId, map, section), rush[0], 'reused until READ_CACHE_MS has passed');
  clock += 1;
  const fresh = await reads.seatMap(spec.eventId, map, section);
  t.not(fresh, rush[0], 'then read again');
  t.equal(fresh!.rows[0]!.seats[0]!.state, 'sold', 'and the change shows');
  t.equal(fresh!.asOf, new Date(clock).toISOString());
  const other = await reads.seatMap(spec.eventId, map, map.layout.sections[1]!.id);
  t.equal(other!.section, 'B', 'each section has its own answer');
  t.ok(
    other!.rows.every((row) => row.seats.every((s) => s.seat.startsWith('B-') && s.state === 'available')),
    "with that section's seats",
  );
  t.equal(await reads.seatMap(spec.eventId, map, 'no-such-section'), undefined);

  const counts = await Promise.all([reads.availability(spec.eventId, map), reads.availability(spec.eventId, map)]);
  t.equal(counts[0], counts[1], 'availability: one read for readers at once');
  t.equal(counts[0].sections[0]!.sold, 1);
  clock += READ_CACHE_MS;
  t.not(await reads.availability(spec.eventId, map), counts[0], 'and a new one later');
});

t.test('a failed read is not reused', async (t) => {
  const pool = await testDatabase();
  const spec = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 1, seats: 2 }) });
  const map = mapOf(spec);
  await pool.end(); // every query fails from now on
  const reads = new InventoryReads(pool, () => 0);
  const section = map.layout.sections[0]!.id;
  const first = reads.seatMap(spec.eventId, map, section);
  await t.rejects(first);
  const second = reads.seatMap(spec.eventId, map, section);
  t.not(second, first, 'the next reader reads again');
  await t.rejects(second);
});

t.test("a section's seat map reads that section's seats, not every seat of the event", async (t) => {
  // Before migration 0014 no index served this read: each one went through every seat of the
  // event by its primary key and kept one section's. Judged by the plan, not by pages read: how
  // this event's rows sit among the test database's others is not the test's to decide.
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 4, layout: testLayout({ sections: 20, rows: 20, seats: 50 }) });
  await pool.query('ANALYZE seats');
  const { rows } = await pool.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${SEAT_MAP_SQL}`, [
    spec.eventId,
    'K',
  ]);
  const plan = rows[0]!['QUERY PLAN'][0].Plan;
  t.equal(plan['Actual Rows'], 1000, "the section's 1,000 seats");
  const nodes = flatten(plan);
  t.ok(
    nodes.some((n) => n['Index Name'] === 'seats_by_section'),
    `read through seats_by_section (${nodes.map((n) => `${n['Node Type']}${n['Index Name'] ? ` on ${n['Index Name']}` : ''}`).join(', ')})`,
  );
  t.equal(
    nodes.reduce((sum, n) => sum + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0), 0),
    0,
    'no seat of another section read and thrown away',
  );
});

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Index Name'?: string;
  readonly 'Actual Rows'?: number;
  readonly 'Rows Removed by Filter'?: number;
  readonly 'Rows Removed by Index Recheck'?: number;
  readonly Plans?: readonly PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}
