/**
 * Delete: the finalizer closes the sale, waits for the engines to let their shards go, archives
 * (never deletes) the sold reservations, and only then lets the object go.
 */
import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { silentLogger } from '../../../src/log.js';
import { GROUP, PLURAL, VERSION } from '../../../src/operator/api/v1alpha1.js';
import { eventSpecOf } from '../../../src/operator/event-spec.js';
import { testConfig } from '../../support/env.js';
import { ShardDriver } from '../../support/shard-driver.js';
import { startEngine, testDatabase, type EngineProcess } from '../../support/stack.js';
import { cluster, createTicketEvent, condition, getTicketEvent, runOperator, testNamespace, waitFor, waitForStatus } from './harness.js';

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

t.test('deleting a TicketEvent keeps its sold reservations, then lets the object go', async (t) => {
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-del');
  const operator = await runOperator(c, pool, namespace);
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'operator-deletion-test' });
  const engines: EngineProcess[] = [];
  t.teardown(async () => {
    for (const engine of engines) {
      engine.signal('SIGCONT');
      await engine.stop();
    }
    await nc.close();
    await operator.stop();
    await cleanup();
    await pool.end();
  });
  const name = 'finale';
  const eventId = `${namespace}--${name}`;
  const now = Date.now();
  await createTicketEvent(c, namespace, name, {
    displayName: 'Finale',
    sale: { opensAt: iso(now - 60_000), closesAt: iso(now + 3_600_000) },
    layout: {
      sections: [
        {
          id: 'A',
          rows: [
            { id: '1', seats: 6 },
            { id: '2', seats: 6 },
          ],
        },
      ],
      pools: [],
    },
    shardCount: 2,
    engine: { replicas: 1 },
  });
  const provisioned = await waitForStatus(
    c,
    namespace,
    name,
    'provisioned',
    (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True',
  );

  // An engine started the way its pod would be; a long lease so that pausing it below is harmless.
  const engine = await startEngine(eventId, { SENTINEL_LEASE_TTL_MS: '15000' });
  engines.push(engine);
  await waitForStatus(c, namespace, name, 'both shards owned', (o) => o.status?.shards?.ready === 2, 30_000);

  // Sell three seats through the engine, exactly as the ingress would.
  const spec = eventSpecOf(provisioned);
  if (!spec.ok) throw new Error(spec.message);
  const driver = new ShardDriver(nc, spec.spec);
  for (const [i, seat] of ['A-1-1', 'A-1-2', 'A-2-6'].entries()) {
    const result = await driver.send({ type: 'reserve', key: `k-${i}`, customer: `buyer-${i}`, seat });
    t.equal(result.type, 'confirmed', `sold ${seat}`);
  }
  await waitForStatus(c, namespace, name, '3 sold in status', (o) => o.status?.seats?.sold === 3);

  // Freeze the engine so that it cannot drain yet: deletion must wait for it.
  engine.signal('SIGSTOP');
  await c.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name });
  const draining = await waitForStatus(c, namespace, name, 'Draining', (o) => condition(o.status, 'Ready')?.reason === 'Draining');
  t.ok(draining.metadata.deletionTimestamp, 'the object is still there, held by the finalizer');
  t.equal(draining.status?.phase, 'Closed');
  t.match(condition(draining.status, 'Ready')?.message, /waiting until .* for engines to release 2 of 2 shards/);
  const closed = await pool.query<{ status: string }>('SELECT status FROM events WHERE id = $1', [eventId]);
  t.equal(closed.rows[0]?.status, 'closed', 'the sale is closed first');
  const unarchived = await pool.query<{ n: string }>('SELECT count(*) AS n FROM reservations WHERE event_id = $1 AND archived_at IS NULL', [
    eventId,
  ]);
  t.equal(Number(unarchived.rows[0]?.n), 3, 'nothing is archived while an engine still owns a shard');

  // Let the engine run again: it sees the closed sale, hands its shards off, and the object goes.
  engine.signal('SIGCONT');
  await waitFor('the TicketEvent to be deleted', async () => (await getTicketEvent(c, namespace, name)) === undefined, 30_000);

  const reservations = await pool.query<{ seats: string[]; archived: boolean }>(
    'SELECT seats, archived_at IS NOT NULL AS archived FROM reservations WHERE event_id = $1 ORDER BY seats',
    [eventId],
  );
  t.same(
    reservations.rows,
    [
      { seats: ['A-1-1'], archived: true },
      { seats: ['A-1-2'], archived: true },
      { seats: ['A-2-6'], archived: true },
    ],
    'every sold reservation is kept, marked archived',
  );
  const sold = await pool.query<{ n: string }>("SELECT count(*) AS n FROM seats WHERE event_id = $1 AND state = 'sold'", [eventId]);
  t.equal(Number(sold.rows[0]?.n), 3, 'sold seats stay sold');
  const event = await pool.query<{ status: string }>('SELECT status FROM events WHERE id = $1', [eventId]);
  t.equal(event.rows[0]?.status, 'archived');
  const owners = await pool.query<{ n: string }>('SELECT count(*) AS n FROM shards WHERE event_id = $1 AND owner IS NOT NULL', [eventId]);
  t.equal(Number(owners.rows[0]?.n), 0, 'the engine let go of every shard before the archive');
  const events = await c.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  const reasons = events.items.map((e) => e.reason);
  t.ok(reasons.includes('Closing') && reasons.includes('Archived'), `Closing and Archived recorded (${reasons.join(', ')})`);
  t.match(events.items.find((e) => e.reason === 'Archived')?.message, /3 reservations kept/);
});
