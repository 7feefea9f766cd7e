/** A safe update rolls out; an unsafe one sets a condition and changes nothing, anywhere. */
import t from 'tap';
import { testDatabase } from '../../support/stack.js';
import {
  cluster,
  createTicketEvent,
  condition,
  patchMerge,
  recordedEvent,
  runOperator,
  testNamespace,
  waitFor,
  waitForStatus,
} from './harness.js';

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

t.test('safe changes roll out; unsafe changes are refused whole', async (t) => {
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-upd');
  const operator = await runOperator(c, pool, namespace);
  t.teardown(async () => {
    await operator.stop();
    await cleanup();
    await pool.end();
  });
  const name = 'gala';
  const eventId = `${namespace}--${name}`;
  const opens = Date.now() - 60_000;
  const layout = {
    sections: [
      {
        id: 'A',
        rows: [
          { id: '1', seats: 8 },
          { id: '2', seats: 8 },
          { id: '3', seats: 8 },
        ],
      },
    ],
    pools: [],
  };
  await createTicketEvent(c, namespace, name, {
    displayName: 'Gala',
    sale: { opensAt: iso(opens), closesAt: iso(opens + 3_600_000) },
    layout,
    shardCount: 2,
    customerLimit: 4,
    engine: { replicas: 2 },
  });
  await waitForStatus(c, namespace, name, 'provisioned', (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True');
  const row = async () =>
    (
      await pool.query<{ shard_count: number; customer_limit: number; display_name: string; sale_closes_at: Date; layout_hash: string }>(
        'SELECT shard_count, customer_limit, display_name, sale_closes_at, layout_hash FROM events WHERE id = $1',
        [eventId],
      )
    ).rows[0];
  const seatCount = async () =>
    Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM seats WHERE event_id = $1', [eventId])).rows[0]?.n);
  const replicas = async () => (await c.apps.readNamespacedDeployment({ namespace, name: `${name}-engine` })).spec?.replicas;

  await t.test('safe: more replicas, a later close, a higher limit, a new name', async (t) => {
    const later = opens + 7_200_000;
    const updated = await patchMerge(c, namespace, name, {
      spec: { displayName: 'Gala (extended)', sale: { closesAt: iso(later) }, customerLimit: 6, engine: { replicas: 3 } },
    });
    const status = await waitForStatus(
      c,
      namespace,
      name,
      'the new generation observed',
      (o) => o.status?.observedGeneration === updated.metadata.generation,
    );
    t.match(condition(status.status, 'InventoryProvisioned'), { status: 'True', reason: 'Provisioned' });
    t.equal(await waitFor('3 engine replicas', async () => ((await replicas()) === 3 ? 3 : undefined)), 3);
    const after = await row();
    t.equal(after?.customer_limit, 6);
    t.equal(after?.display_name, 'Gala (extended)');
    t.equal(after?.sale_closes_at.getTime(), Date.parse(iso(later)));
    t.match((await recordedEvent(c, namespace, name, 'Updated')).message, /customerLimit/);
  });

  const before = await row();
  const seatsBefore = await seatCount();

  await t.test('unsafe: a new shard count (with other edits in the same change)', async (t) => {
    const updated = await patchMerge(c, namespace, name, { spec: { shardCount: 3, customerLimit: 9, engine: { replicas: 5 } } });
    const status = await waitForStatus(
      c,
      namespace,
      name,
      'the refusal reported',
      (o) =>
        o.status?.observedGeneration === updated.metadata.generation && condition(o.status, 'InventoryProvisioned')?.status === 'False',
    );
    t.match(condition(status.status, 'InventoryProvisioned'), {
      reason: 'UnsafeChangeRefused',
      message: /shard count 3 differs from the provisioned 2.*nothing of this change was applied/,
    });
    t.match(condition(status.status, 'Degraded'), { status: 'True', reason: 'UnsafeChangeRefused' });
    t.match(condition(status.status, 'Ready'), { status: 'False', reason: 'UnsafeChangeRefused' });
    t.equal(status.status?.phase, 'OnSale', 'the sale goes on with what was provisioned');
    t.same(await row(), before, 'the inventory is untouched, including the safe-looking limit in the same edit');
    t.equal(await replicas(), 3, 'not half-applied: the Deployment keeps its replicas');
    // Someone deletes the engines while the change is refused: they come back as the accepted spec
    // made them, with nothing of the refused change.
    const engines = () => c.apps.readNamespacedDeployment({ namespace, name: `${name}-engine` });
    const deleted = (await engines()).metadata?.uid;
    await c.apps.deleteNamespacedDeployment({ namespace, name: `${name}-engine` });
    const recreated = await waitFor(
      'the engine Deployment recreated',
      async () => {
        const deployment = await engines().catch(() => undefined);
        return deployment?.metadata?.uid !== undefined && deployment.metadata.uid !== deleted ? deployment : undefined;
      },
      20_000,
    );
    t.equal(recreated.spec?.replicas, 3, 'a Deployment deleted during the refusal is recreated from the accepted spec (3 replicas, not 5)');
    t.equal((await recordedEvent(c, namespace, name, 'UnsafeChangeRefused')).type, 'Warning');
  });

  await t.test('unsafe: removing seats from the layout', async (t) => {
    const updated = await patchMerge(c, namespace, name, {
      spec: {
        shardCount: 2,
        customerLimit: 6,
        engine: { replicas: 3 },
        layout: {
          sections: [
            {
              id: 'A',
              rows: [
                { id: '1', seats: 8 },
                { id: '2', seats: 4 },
              ],
            },
          ],
        },
      },
    });
    const status = await waitForStatus(
      c,
      namespace,
      name,
      'the layout refusal reported',
      (o) =>
        o.status?.observedGeneration === updated.metadata.generation &&
        /layout/.test(condition(o.status, 'InventoryProvisioned')?.message ?? ''),
    );
    t.match(condition(status.status, 'InventoryProvisioned'), { status: 'False', reason: 'UnsafeChangeRefused' });
    t.equal(await seatCount(), seatsBefore, 'no seat was removed');
    t.same(await row(), before);
  });

  await t.test('putting the spec back clears the refusal', async (t) => {
    const updated = await patchMerge(c, namespace, name, { spec: { layout } });
    const status = await waitForStatus(
      c,
      namespace,
      name,
      'InventoryProvisioned=True again',
      (o) => o.status?.observedGeneration === updated.metadata.generation && condition(o.status, 'InventoryProvisioned')?.status === 'True',
    );
    t.match(condition(status.status, 'Degraded'), { reason: 'ShardsUnavailable' }, 'no refusal left; only the missing engines');
  });

  await t.test('a change the API server refuses for the engine Deployment is applied nowhere', async (t) => {
    const deployment = async () => c.apps.readNamespacedDeployment({ namespace, name: `${name}-engine` });
    const deploymentBefore = await deployment();
    const rowBefore = await row();
    // The CRD accepts any non-empty name; a Deployment's envFrom wants a DNS subdomain.
    const updated = await patchMerge(c, namespace, name, { spec: { customerLimit: 7, engine: { configMapRef: { name: 'Not_A_Name' } } } });
    const status = await waitForStatus(
      c,
      namespace,
      name,
      'the rejection reported',
      (o) =>
        o.status?.observedGeneration === updated.metadata.generation &&
        condition(o.status, 'InventoryProvisioned')?.reason === 'ChildRejected',
    );
    t.match(condition(status.status, 'InventoryProvisioned'), {
      status: 'False',
      message:
        /^spec\.engine\.configMapRef: the API server refuses the Deployment gala-engine.*Not_A_Name.*nothing of this change was applied/,
    });
    t.match(condition(status.status, 'Degraded'), { status: 'True', reason: 'ChildRejected' });
    t.equal(status.status?.phase, 'OnSale', 'not Failed: the sale goes on, and its phase with it');
    t.same(await row(), rowBefore, 'the safe-looking limit of the same edit was not committed either');
    t.equal((await deployment()).metadata?.resourceVersion, deploymentBefore.metadata?.resourceVersion, 'the Deployment is untouched');
    t.equal((await recordedEvent(c, namespace, name, 'ChildRejected')).type, 'Warning');

    // Requests above limits (the Deployment would refuse them too) are stopped earlier, at admission.
    await t.rejects(patchMerge(c, namespace, name, { spec: { engine: { resources: { requests: { cpu: '2' }, limits: { cpu: '1' } } } } }), {
      code: 422,
      message: /spec\.engine\.resources\.requests\.cpu.*must be less than or equal to resources\.limits\.cpu/,
    });

    // Fixing the reference lets the whole edit through, the limit included.
    const fixed = await patchMerge(c, namespace, name, { spec: { engine: { configMapRef: null } } });
    const rolled = await waitForStatus(
      c,
      namespace,
      name,
      'the fixed edit rolled out',
      (o) => o.status?.observedGeneration === fixed.metadata.generation && condition(o.status, 'InventoryProvisioned')?.status === 'True',
    );
    t.equal(rolled.status?.phase, 'OnSale');
    t.equal((await row())?.customer_limit, 7);
  });
});
