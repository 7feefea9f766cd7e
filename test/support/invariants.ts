import type pg from 'pg';
import type { ShardResult } from '../../src/domain/commands.js';

/**
 * Checks the database against the invariants: no seat in two live holds or sold twice; every
 * seat row agrees with its hold; every acknowledged success is in the database. Returns the
 * violations (empty when all hold).
 */
export async function inventoryViolations(pool: pg.Pool, eventId: string, acknowledged: readonly ShardResult[] = []): Promise<string[]> {
  const violations: string[] = [];
  const twice = await pool.query<{ seat: string; n: string }>(
    `SELECT seat, count(*) AS n FROM holds, unnest(seats) AS seat
      WHERE event_id = $1 AND state IN ('live', 'confirmed') GROUP BY seat HAVING count(*) > 1`,
    [eventId],
  );
  for (const row of twice.rows) violations.push(`seat ${row.seat} is in ${row.n} live or confirmed holds`);
  const disagree = await pool.query<{ seat_id: string; state: string; hold_id: string | null; hold_state: string | null }>(
    `SELECT s.seat_id, s.state, s.hold_id, h.state AS hold_state FROM seats s LEFT JOIN holds h ON h.hold_id = s.hold_id
      WHERE s.event_id = $1 AND NOT (
        (s.state = 'available' AND s.hold_id IS NULL) OR
        (s.state = 'held' AND h.state = 'live' AND s.seat_id = ANY(h.seats)) OR
        (s.state = 'sold' AND h.state = 'confirmed' AND s.seat_id = ANY(h.seats)))`,
    [eventId],
  );
  for (const row of disagree.rows) violations.push(`seat ${row.seat_id} is ${row.state} with hold ${row.hold_id} (${row.hold_state})`);
  const soldTwice = await pool.query<{ seat: string; n: string }>(
    `SELECT seat, count(*) AS n FROM reservations, unnest(seats) AS seat WHERE event_id = $1 GROUP BY seat HAVING count(*) > 1`,
    [eventId],
  );
  for (const row of soldTwice.rows) violations.push(`seat ${row.seat} sold ${row.n} times`);
  const holdIds = acknowledged.flatMap((r) => (r.type === 'held' ? [r.hold.holdId] : []));
  const reservationIds = acknowledged.flatMap((r) => (r.type === 'confirmed' ? [r.reservation.reservationId] : []));
  if (holdIds.length > 0) {
    const found = await pool.query<{ hold_id: string }>('SELECT hold_id FROM holds WHERE hold_id = ANY($1)', [holdIds]);
    const present = new Set(found.rows.map((r) => r.hold_id));
    for (const id of holdIds) if (!present.has(id)) violations.push(`acknowledged hold ${id} is not in the database`);
  }
  if (reservationIds.length > 0) {
    const found = await pool.query<{ reservation_id: string }>('SELECT reservation_id FROM reservations WHERE reservation_id = ANY($1)', [
      reservationIds,
    ]);
    const present = new Set(found.rows.map((r) => r.reservation_id));
    for (const id of reservationIds) if (!present.has(id)) violations.push(`acknowledged reservation ${id} is not in the database`);
  }
  return violations;
}
