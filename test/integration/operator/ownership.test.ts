/**
 * An object that already has the name of one of a TicketEvent's children — the chart's shared
 * engine ConfigMap `sentinel-engine` under a TicketEvent named `sentinel`, say — is not taken over:
 * server-side apply would add the TicketEvent as its owner, and garbage collection would delete it
 * with the TicketEvent. The event is refused (ChildNotOwned), the object left as it was; once it is
 * gone, the event provisions by itself.
 */
import t from 'tap';
import { testDatabase } from '../../support/stack.js';
import { cluster, condition, createTicketEvent, recordedEvent, runOperator, testNamespace, waitForStatus } from './harness.js';

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

t.test("a child's namesake that is someone else's is left alone, and the TicketEvent says so", async (t) => {
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-own');
  const operator = await runOperator(c, pool, namespace);
  t.teardown(async () => {
    await operator.stop();
    await cleanup();
    await pool.end();
  });
  const shared = { namespace, name: 'sentinel-engine' };
  await c.core.createNamespacedConfigMap({
    namespace,
    body: { metadata: shared, data: { DATABASE_URL: 'postgres://shared' } },
  });

  const opens = Date.now() + 3_600_000;
  await createTicketEvent(c, namespace, 'sentinel', {
    displayName: 'Named like the chart',
    sale: { opensAt: iso(opens), closesAt: iso(opens + 3_600_000) },
    layout: { sections: [{ id: 'A', rows: [{ id: '1', seats: 4 }] }], pools: [] },
    shardCount: 1,
  });
  const refused = await waitForStatus(
    c,
    namespace,
    'sentinel',
    'ChildNotOwned',
    (o) => condition(o.status, 'InventoryProvisioned')?.reason === 'ChildNotOwned',
  );
  t.match(condition(refused.status, 'InventoryProvisioned'), {
    status: 'False',
    message: /^the ConfigMap sentinel-engine this TicketEvent needs exists and is not its own \(it has no owner\)/,
  });
  t.equal(refused.status?.phase, 'Failed');
  t.equal((await recordedEvent(c, namespace, 'sentinel', 'ChildNotOwned')).type, 'Warning');
  const after = await c.core.readNamespacedConfigMap(shared);
  t.same(after.metadata?.ownerReferences ?? [], [], 'no owner added');
  t.same(after.data, { DATABASE_URL: 'postgres://shared' }, 'its data untouched');
  await t.rejects(c.apps.readNamespacedDeployment({ namespace, name: 'sentinel-engine' }), { code: 404 }, 'no engine Deployment');
  const rows = await pool.query('SELECT 1 FROM events WHERE id = $1', [`${namespace}--sentinel`]);
  t.equal(rows.rowCount, 0, 'no inventory');

  await c.core.deleteNamespacedConfigMap(shared);
  const provisioned = await waitForStatus(
    c,
    namespace,
    'sentinel',
    'provisioned once the namesake is gone',
    (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True',
  );
  t.equal(provisioned.status?.phase, 'Pending');
  const own = await c.core.readNamespacedConfigMap(shared);
  t.equal(own.metadata?.ownerReferences?.[0]?.uid, provisioned.metadata.uid, "now the TicketEvent's own");
});
