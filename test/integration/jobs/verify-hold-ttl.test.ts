/**
 * verify's check of how long holds were given, against real Postgres, for an event edited during its
 * sale: its current TTL says nothing of the one its holds were given, so only the bound every engine
 * enforces (MAX_HOLD_TTL_MS) may flag a hold. verify-planted covers an event never edited; the unit
 * test (test/unit/jobs/verify-hold-ttl.test.ts) the choice of bound.
 */
import t from 'tap';
import { checkInventory, eventFacts, MAX_HOLD_TTL_MS } from '../../../src/jobs/verify/inventory-checks.js';
import { Violations } from '../../../src/jobs/verify/violations.js';
import { provisionTestEvent, testDatabase } from '../../support/stack.js';

t.test('an edited event: a hold given more than its current TTL is fine up to the engines’ bound, and flagged past it', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { holdTtlMs: 60_000 });
  // An edit during the sale (the operator bumps the version with every change of the spec).
  await pool.query('UPDATE events SET version = version + 1 WHERE id = $1', [spec.eventId]);
  const plant = (holdId: string, lifetimeMs: number) =>
    pool.query(
      `INSERT INTO holds (hold_id, event_id, shard, customer, quantity, state, created_at, expires_at, ended_at)
       VALUES ($1, $2, 0, 'ann', 1, 'expired', now() - interval '30 days', now() - interval '30 days' + make_interval(secs => $3::float8 / 1000), now())`,
      [holdId, spec.eventId, lifetimeMs],
    );
  await plant(`${spec.eventId}-within`, 3_600_000); // an hour: longer than today's TTL, within the bound
  await plant(`${spec.eventId}-beyond`, MAX_HOLD_TTL_MS + 60_000);

  const facts = await eventFacts(pool, spec.eventId);
  t.equal(facts?.version, 2, 'the event reads as edited');
  const violations = new Violations();
  await checkInventory(pool, facts!, violations, 2000);
  const flagged = violations.list().filter((v) => v.check === 'hold-longer-than-ttl');
  t.equal(flagged.length, 1, 'only the hold given more than any engine gives');
  t.match(
    flagged[0]?.message,
    new RegExp(`^expired hold ${spec.eventId}-beyond .* more than ${MAX_HOLD_TTL_MS} ms \\+ 2000 ms slack \\(the event was edited`),
  );
});
