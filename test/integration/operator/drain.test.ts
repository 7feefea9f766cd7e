/**
 * Deletion drains before it lets go: never while the event's outbox still has rows Kafka has not
 * got (the engines, its only relay, go with the finalizer), and always a full drain window after
 * the close — even when the operator was down for longer than that when the object was deleted.
 */
import t from 'tap';
import type pg from 'pg';
import { GROUP, PLURAL, VERSION } from '../../../src/operator/api/v1alpha1.js';
import { testDatabase } from '../../support/stack.js';
import {
  cluster,
  condition,
  createTicketEvent,
  getTicketEvent,
  kubectl,
  recordedEvent,
  runOperator,
  testNamespace,
  waitFor,
  waitForStatus,
  type Cluster,
} from './harness.js';

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
const DRAIN_TIMEOUT_MS = 2_000;

async function createOnSale(c: Cluster, namespace: string, name: string): Promise<void> {
  const now = Date.now();
  await createTicketEvent(c, namespace, name, {
    displayName: 'Drain',
    sale: { opensAt: iso(now - 60_000), closesAt: iso(now + 3_600_000) },
    layout: { sections: [{ id: 'A', rows: [{ id: '1', seats: 4 }] }], pools: [{ id: 'GA', capacity: 10 }] },
    shardCount: 2,
    engine: { replicas: 1 },
  });
  await waitForStatus(c, namespace, name, 'provisioned', (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True');
}

const deleteTicketEvent = (c: Cluster, namespace: string, name: string) =>
  c.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name });

const eventStatus = async (pool: pg.Pool, eventId: string): Promise<string | undefined> =>
  (await pool.query<{ status: string }>('SELECT status FROM events WHERE id = $1', [eventId])).rows[0]?.status;

t.test('deletion keeps the finalizer while the outbox has unpublished rows, past the drain timeout', async (t) => {
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-outbox');
  const operator = await runOperator(c, pool, namespace, { drainTimeoutMs: DRAIN_TIMEOUT_MS });
  const outboxIds: string[] = [];
  t.teardown(async () => {
    // The row stands for a reservation Kafka has not got; it is this test's only, and goes with it.
    if (outboxIds.length > 0) await pool.query('DELETE FROM outbox WHERE id = ANY($1::bigint[])', [outboxIds]);
    await operator.stop();
    await cleanup();
    await pool.end();
  });
  const name = 'stalled';
  const eventId = `${namespace}--${name}`;
  await createOnSale(c, namespace, name);

  // A confirmed reservation whose message has not reached Kafka (Kafka down, say). Its topic is one
  // no relay publishes, so nothing but this test moves it.
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO outbox (event_id, topic, message_key, payload) VALUES ($1, 'sentinel.test.operator-drain', 'r-1', '{}') RETURNING id`,
    [eventId],
  );
  outboxIds.push(...rows.map((r) => r.id));

  await deleteTicketEvent(c, namespace, name);
  const draining = await waitForStatus(c, namespace, name, 'Draining on the outbox', (o) =>
    /1 reservations not yet published to Kafka/.test(condition(o.status, 'Ready')?.message ?? ''),
  );
  t.equal(draining.status?.phase, 'Closed');
  t.ok(draining.status?.drainingSince, 'when the sale was closed is recorded');

  const stuck = await waitForStatus(
    c,
    namespace,
    name,
    'OutboxNotDrained after the drain timeout',
    (o) => condition(o.status, 'Degraded')?.reason === 'OutboxNotDrained',
  );
  t.match(condition(stuck.status, 'Degraded')?.message, /1 reservations .* still not published to Kafka .*removing the finalizer/);
  t.ok(stuck.metadata.finalizers?.includes('sentinel.dev/inventory'), 'the finalizer stays');
  t.equal((await recordedEvent(c, namespace, name, 'OutboxNotDrained')).type, 'Warning');
  await new Promise((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS));
  t.ok(await getTicketEvent(c, namespace, name), 'still kept well past the drain timeout');
  t.equal(await eventStatus(pool, eventId), 'closed', 'closed, not archived');

  // The relay gets through: the deletion finishes by itself.
  await pool.query('UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])', [outboxIds]);
  await waitFor('the TicketEvent to be deleted', async () => (await getTicketEvent(c, namespace, name)) === undefined, 20_000);
  t.equal(await eventStatus(pool, eventId), 'archived');
});

t.test('an operator down for longer than the drain timeout still drains a full window after the close', async (t) => {
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-late');
  let operator = await runOperator(c, pool, namespace, { drainTimeoutMs: DRAIN_TIMEOUT_MS });
  const name = 'late';
  const eventId = `${namespace}--${name}`;
  t.teardown(async () => {
    await pool.query('UPDATE shards SET owner = NULL WHERE event_id = $1', [eventId]);
    await pool.query(`DELETE FROM engine_heartbeats WHERE engine_id = 'engine-that-never-drains'`);
    await operator.stop();
    await cleanup();
    await pool.end();
  });
  await createOnSale(c, namespace, name);

  // The operator goes away; an engine owns a shard (one that never lets go: the worst case).
  await operator.stop();
  await pool.query(`UPDATE shards SET owner = 'engine-that-never-drains', claimed_at = now() WHERE event_id = $1 AND shard = 0`, [eventId]);
  // Alive all along: its heartbeat never runs out.
  await pool.query(
    `INSERT INTO engine_heartbeats (engine_id, expires_at) VALUES ('engine-that-never-drains', now() + interval '1 hour')
     ON CONFLICT (engine_id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
  );
  await deleteTicketEvent(c, namespace, name);
  await new Promise((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS + 500));

  // Back after more than the drain timeout: it closes the sale now, and waits a whole window from there.
  const restarted = Date.now();
  operator = await runOperator(c, pool, namespace, { drainTimeoutMs: DRAIN_TIMEOUT_MS });
  const draining = await waitForStatus(c, namespace, name, 'Draining', (o) => condition(o.status, 'Ready')?.reason === 'Draining');
  t.ok(Date.parse(draining.status?.drainingSince ?? '') >= restarted - 1_000, 'the drain counts from the close, not from the deletion');
  t.match(condition(draining.status, 'Ready')?.message, /for engines to release 1 of 2 shards/);
  t.equal(await eventStatus(pool, eventId), 'closed', 'closed, not archived in the same reconcile');

  await waitFor('the TicketEvent to be deleted', async () => (await getTicketEvent(c, namespace, name)) === undefined, 20_000);
  t.ok(Date.now() - restarted >= DRAIN_TIMEOUT_MS, `let go ${Date.now() - restarted} ms after the close, not before the window`);
  t.equal(await eventStatus(pool, eventId), 'archived');
  t.equal((await recordedEvent(c, namespace, name, 'DrainTimedOut')).type, 'Warning', 'the shard still owned after the window is reported');
});

t.test('after the finalizer is removed by hand, the same manifest applied again is refused, not shown on sale', async (t) => {
  // The documented escape hatch for a deletion held by the outbox leaves the event `closed`, not
  // archived. Provisioning it again used to find it "unchanged": InventoryProvisioned=True and
  // OnSale, while no engine serves a closed event.
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-hatch');
  const operator = await runOperator(c, pool, namespace, { drainTimeoutMs: DRAIN_TIMEOUT_MS });
  const outboxIds: string[] = [];
  t.teardown(async () => {
    if (outboxIds.length > 0) await pool.query('DELETE FROM outbox WHERE id = ANY($1::bigint[])', [outboxIds]);
    await operator.stop();
    await cleanup();
    await pool.end();
  });
  const name = 'forced';
  const eventId = `${namespace}--${name}`;
  const now = Date.now();
  const manifest = {
    displayName: 'Forced',
    sale: { opensAt: iso(now - 60_000), closesAt: iso(now + 3_600_000) },
    layout: { pools: [{ id: 'GA', capacity: 10 }] },
    engine: { replicas: 1 },
  };
  await createTicketEvent(c, namespace, name, manifest);
  await waitForStatus(c, namespace, name, 'provisioned', (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True');
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO outbox (event_id, topic, message_key, payload) VALUES ($1, 'sentinel.test.operator-hatch', 'r-1', '{}') RETURNING id`,
    [eventId],
  );
  outboxIds.push(...rows.map((r) => r.id));

  await deleteTicketEvent(c, namespace, name);
  await waitForStatus(c, namespace, name, 'OutboxNotDrained', (o) => condition(o.status, 'Degraded')?.reason === 'OutboxNotDrained');
  t.equal(await eventStatus(pool, eventId), 'closed');
  const removed = await kubectl([
    'patch',
    'ticketevent',
    name,
    '-n',
    namespace,
    '--type=json',
    '-p',
    '[{"op":"remove","path":"/metadata/finalizers/0"}]',
  ]);
  t.equal(removed.code, 0, 'finalizer removed by hand', { stderr: removed.stderr });
  await waitFor('the TicketEvent to go', async () => (await getTicketEvent(c, namespace, name)) === undefined, 10_000);
  t.equal(await eventStatus(pool, eventId), 'closed', 'neither archived nor reopened');
  // What the garbage collector does in a cluster (no controller-manager runs here).
  const gone = await kubectl(['delete', 'deploy,cm,svc,pdb', '-n', namespace, '-l', `sentinel.dev/ticket-event=${name}`, '--wait']);
  t.equal(gone.code, 0, 'its children deleted', { stderr: gone.stderr });

  await createTicketEvent(c, namespace, name, manifest);
  const refused = await waitForStatus(
    c,
    namespace,
    name,
    'EventClosed',
    (o) => condition(o.status, 'InventoryProvisioned')?.reason === 'EventClosed',
  );
  t.equal(refused.status?.phase, 'Failed', 'not OnSale');
  t.match(condition(refused.status, 'InventoryProvisioned'), { status: 'False', message: /is closed .*never reopened/ });
  t.match(condition(refused.status, 'Ready'), { status: 'False', reason: 'EventClosed' });
  t.equal((await recordedEvent(c, namespace, name, 'EventClosed')).type, 'Warning');
  t.equal(await eventStatus(pool, eventId), 'closed', 'still closed');
  const engines = await c.apps.readNamespacedDeployment({ namespace, name: `${name}-engine` }).catch(() => undefined);
  t.equal(engines, undefined, 'no engines started for it');
});
