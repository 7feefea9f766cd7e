/**
 * The snapshot loader names each sold seat's buyer (the customer of the hold it was sold through),
 * so a rebuilt shard can name buyers in its refusals (`soldTo`) — and reads those buyers by key,
 * never by hashing the holds of every event (ADR 0008, decision 9).
 */
import t from 'tap';
import type { ShardChange } from '../../../src/domain/commands.js';
import { InventoryStore, LOAD_SEATS_SQL } from '../../../src/adapters/postgres/inventory-store.js';
import { emptyBatchWrite, foldChanges } from '../../../src/engine/batch-write.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

const pool = await testDatabase();
t.teardown(() => pool.end());

/** The changes of `customer` buying `seats` (a hold confirmed into a reservation) at `now`. */
function purchase(customer: string, holdId: string, seats: string[], now: number): ShardChange[] {
  return [
    { type: 'hold-created', hold: { holdId, customer, seats, quantity: seats.length, createdAt: now, expiresAt: now + 60_000 } },
    ...seats.map((seat) => ({ type: 'seat', seat, state: 'sold', holdId, fromVersion: 0, toVersion: 1 }) as const),
    {
      type: 'reservation-created',
      reservation: { reservationId: `r${holdId}`, holdId, customer, seats, quantity: seats.length, confirmedAt: now },
    },
  ];
}

t.test("a loaded shard's sold seats carry their buyers; other seats none", async (t) => {
  // Large enough (2,000 seats in the shard) that a join would hash the holds table rather than
  // look each buyer up: that is what the planner made of a LEFT JOIN.
  const spec = await provisionTestEvent(pool, { layout: testLayout({ rows: 20, seats: 100 }), shardCount: 1, customerLimit: 8 });
  const store = new InventoryStore(pool);
  const epoch = await store.claimShard(spec.eventId, 0, 'owner');
  const now = Date.now();
  const write = emptyBatchWrite();
  const holdId = (n: number) => `h_${spec.eventId}_${n}`;
  foldChanges(
    write,
    [
      ...purchase('ann', holdId(1), ['A-1-1', 'A-1-2'], now),
      ...purchase('bob', holdId(2), ['A-2-5'], now),
      {
        type: 'hold-created',
        hold: { holdId: holdId(3), customer: 'cy', seats: ['A-1-3'], quantity: 1, createdAt: now, expiresAt: now + 60_000 },
      },
      { type: 'seat', seat: 'A-1-3', state: 'held', holdId: holdId(3), fromVersion: 0, toVersion: 1 },
    ],
    now,
  );
  await store.commitBatch(spec.eventId, 0, epoch, 8, write, 'unused');
  const rows = await store.loadShard(spec.eventId, 0, new Date(now - 60_000));
  const taken = rows.seats
    .filter((s) => s.state !== 'available')
    .map((s) => [s.id, s.state, s.buyer ?? null])
    .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  t.same(taken, [
    ['A-1-1', 'sold', 'ann'],
    ['A-1-2', 'sold', 'ann'],
    ['A-1-3', 'held', null],
    ['A-2-5', 'sold', 'bob'],
  ]);
  t.notOk(
    rows.seats.some((s) => s.state === 'available' && 'buyer' in s),
    'available seats carry no buyer',
  );

  // The buyers are found by the holds' primary key: never a scan or hash of the holds table.
  const { rows: plan } = await pool.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${LOAD_SEATS_SQL}`, [spec.eventId, 0]);
  const nodes: Record<string, unknown>[] = [];
  const walk = (node: Record<string, unknown>): void => {
    nodes.push(node);
    for (const child of (node['Plans'] as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  walk((plan[0]!['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
  const onHolds = nodes.filter((n) => n['Relation Name'] === 'holds');
  t.ok(onHolds.length > 0, 'holds are read');
  t.ok(
    onHolds.every((n) => n['Index Name'] === 'holds_pkey' && /^Index (Only )?Scan$/.test(String(n['Node Type']))),
    `holds are read by their key (${JSON.stringify(onHolds.map((n) => [n['Node Type'], n['Index Name']]))})`,
  );
  t.notOk(
    nodes.some((n) => n['Node Type'] === 'Hash Join' || n['Node Type'] === 'Merge Join'),
    'no join that reads the holds table as a whole',
  );
});
