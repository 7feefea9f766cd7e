/**
 * An event that is over is never provisioned again: archived, or only closed — as a deletion
 * leaves it when the TicketEvent's finalizer is removed by hand (ADR 0005). No engine serves a
 * closed event; found "unchanged", the operator would report it provisioned and on sale.
 */
import t from 'tap';
import { archiveEvent, closeEvent, provisionEvent } from '../../../src/engine/provision.js';
import { provisionTestEvent, testDatabase } from '../../support/stack.js';

t.test('a closed event is refused like an archived one, and stays closed', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool);
  await closeEvent(pool, spec.eventId);
  const refused = await provisionEvent(pool, spec);
  t.match(refused, { status: 'refused', reason: 'closed', message: new RegExp(`event ${spec.eventId} is closed .*never reopened`) });
  const changed = await provisionEvent(pool, { ...spec, displayName: 'Renamed', saleClosesAt: new Date(Date.now() + 7_200_000) });
  t.match(changed, { status: 'refused', reason: 'closed' }, 'a changed spec too: nothing is applied');
  const { rows } = await pool.query<{ status: string; display_name: string }>('SELECT status, display_name FROM events WHERE id = $1', [
    spec.eventId,
  ]);
  t.same(rows, [{ status: 'closed', display_name: spec.displayName }], 'still closed, unchanged');

  await archiveEvent(pool, spec.eventId);
  t.match(await provisionEvent(pool, spec), { status: 'refused', reason: 'archived' });
});
