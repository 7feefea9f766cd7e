import type pg from 'pg';
import type { ShardResult } from '../../src/domain/commands.js';
import { checkInventory, eventFacts, openSnapshot } from '../../src/jobs/verify/inventory-checks.js';
import { Violations } from '../../src/jobs/verify/violations.js';

/**
 * The invariants `sentinel verify` checks over the database (one consistent snapshot), plus: every
 * success a shard acknowledged to the test is in the database. Returns the violations as
 * `check: message` lines (empty when all hold). Holds may outlive their TTL by `ttlSlackMs`
 * before that counts: the tests stop engines and read right after.
 */
export async function inventoryViolations(
  pool: pg.Pool,
  eventId: string,
  acknowledged: readonly ShardResult[] = [],
  ttlSlackMs = 60_000,
): Promise<string[]> {
  const event = await eventFacts(pool, eventId);
  if (event === undefined) return [`no event ${eventId}`];
  const violations = new Violations();
  const lines: string[] = [];
  const db = await openSnapshot(pool);
  try {
    await checkInventory(db, event, violations, ttlSlackMs);
    const holdIds = acknowledged.flatMap((r) => (r.type === 'held' ? [r.hold.holdId] : []));
    const reservationIds = acknowledged.flatMap((r) => (r.type === 'confirmed' ? [r.reservation.reservationId] : []));
    const holds = await db.query<{ id: string }>('SELECT hold_id AS id FROM holds WHERE hold_id = ANY($1)', [holdIds]);
    const reservations = await db.query<{ id: string }>('SELECT reservation_id AS id FROM reservations WHERE reservation_id = ANY($1)', [
      reservationIds,
    ]);
    const missing = (ids: string[], found: { id: string }[]) => {
      const present = new Set(found.map((row) => row.id));
      return ids.filter((id) => !present.has(id));
    };
    for (const id of missing(holdIds, holds.rows)) lines.push(`ack-missing: acknowledged hold ${id} is not in the database`);
    for (const id of missing(reservationIds, reservations.rows))
      lines.push(`ack-missing: acknowledged reservation ${id} is not in the database`);
  } finally {
    await db.close();
  }
  return [...violations.list().map((v) => `${v.check}: ${v.message}`), ...lines];
}
