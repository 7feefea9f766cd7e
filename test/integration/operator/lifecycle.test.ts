/**
 * Apply a sample: printer columns show it, inventory appears in Postgres, the engine Deployment
 * exists with owner references, status reaches InventoryProvisioned=True with the right counts;
 * engines started the way a pod starts them make ShardsAvailable follow; health and metrics serve.
 */
import t from 'tap';
import { k8s } from '../../../src/adapters/kubernetes/client.js';
import { desiredChildren } from '../../../src/operator/children.js';
import { ClientNodeGateway } from '../../../src/operator/kube-gateway.js';
import { DEFAULT_OPERATOR_SETTINGS } from '../../../src/operator/operator.js';
import type { TicketEventObject } from '../../../src/operator/types.js';
import { startEngine, testDatabase, type EngineProcess } from '../../support/stack.js';
import { cluster, condition, getTicketEvent, kubectl, patchMerge, runOperator, testNamespace, waitFor, waitForStatus } from './harness.js';

t.test('a sample TicketEvent becomes inventory, an engine Deployment and a truthful status', async (t) => {
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-life');
  // The API gateway as the operator makes it, counting its GETs of the engine Deployment: once the
  // operator's Deployment watch has listed, the reconciler reads the Deployment from it instead.
  const gateway = new ClientNodeGateway(c.kubeConfig);
  let deploymentGets = 0;
  const engineAvailability = gateway.engineAvailability.bind(gateway);
  gateway.engineAvailability = (key) => {
    deploymentGets++;
    return engineAvailability(key);
  };
  const operator = await runOperator(c, pool, namespace, {}, gateway);
  let engine: EngineProcess | undefined;
  t.teardown(async () => {
    await engine?.stop();
    await operator.stop();
    await cleanup();
    await pool.end();
  });

  const applied = await kubectl(['apply', '-n', namespace, '-f', 'k8s/samples/small.yaml']);
  t.equal(applied.code, 0, `kubectl apply: ${applied.stderr}`);
  const eventId = `${namespace}--club-night`;

  const provisioned = await waitForStatus(
    c,
    namespace,
    'club-night',
    'InventoryProvisioned=True',
    (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True',
  );
  t.equal(provisioned.status?.eventId, eventId);
  t.equal(provisioned.status?.phase, 'Pending', 'the sample sale opens in 2030');
  t.same(provisioned.status?.seats, { total: 172, available: 172, held: 0, sold: 0 }, '72 seats + 100 standing');
  t.same(provisioned.status?.shards, { desired: 2, ready: 0 });
  t.equal(provisioned.status?.observedGeneration, provisioned.metadata.generation);
  t.ok(provisioned.metadata.finalizers?.includes('sentinel.dev/inventory'), 'finalizer set');

  await t.test('printer columns show phase, sold/total, shards and age', async (t) => {
    const got = await kubectl(['get', 'te', '-n', namespace]);
    t.equal(got.code, 0, got.stderr);
    const [header, row] = got.stdout.trim().split('\n');
    t.match(header, /^NAME\s+PHASE\s+SOLD\s+SHARDS\s+AGE$/);
    t.match(row, /^club-night\s+Pending\s+0\/172\s+0\/2\s+\d+s$/);
    const wide = await kubectl(['get', 'ticketevents', '-n', namespace, '-o', 'wide']);
    t.match(wide.stdout, new RegExp(`2030-06-01T18:00:00Z\\s+2030-06-02T18:00:00Z\\s+${eventId}`));
  });

  await t.test('the inventory is in Postgres', async (t) => {
    const { rows: events } = await pool.query(
      'SELECT display_name, shard_count, status, hold_ttl_ms, customer_limit FROM events WHERE id = $1',
      [eventId],
    );
    t.same(events, [{ display_name: 'Club Night — Friday', shard_count: 2, status: 'open', hold_ttl_ms: 300_000, customer_limit: 4 }]);
    const { rows: seats } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM seats WHERE event_id = $1', [eventId]);
    t.equal(Number(seats[0]?.n), 72);
    const { rows: pools } = await pool.query('SELECT pool_id, capacity FROM pools WHERE event_id = $1', [eventId]);
    t.same(pools, [{ pool_id: 'GA', capacity: 100 }]);
  });

  await t.test('children exist with controller owner references', async (t) => {
    const uid = provisioned.metadata.uid;
    const owner = {
      apiVersion: 'sentinel.dev/v1alpha1',
      kind: 'TicketEvent',
      name: 'club-night',
      uid,
      controller: true,
      blockOwnerDeletion: true,
    };
    const deployment = await c.apps.readNamespacedDeployment({ namespace, name: 'club-night-engine' });
    t.match(deployment.metadata?.ownerReferences, [owner]);
    t.equal(deployment.spec?.replicas, 1);
    const container = deployment.spec?.template.spec?.containers[0];
    t.same(container?.args, ['engine']);
    t.match(container?.env, [{ name: 'SENTINEL_EVENT', value: eventId }]);
    t.equal(container?.securityContext?.readOnlyRootFilesystem, true);
    t.equal(
      deployment.metadata?.managedFields?.some((f) => f.manager === 'sentinel-operator' && f.operation === 'Apply'),
      true,
      'server-side applied',
    );
    const config = await c.core.readNamespacedConfigMap({ namespace, name: 'club-night-engine' });
    t.match(config.metadata?.ownerReferences, [owner]);
    t.equal(config.data?.['SENTINEL_EVENT'], eventId);
    const service = await c.core.readNamespacedService({ namespace, name: 'club-night-engine-metrics' });
    t.match(service.metadata?.ownerReferences, [owner]);
    const events = await c.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=club-night` });
    t.ok(
      events.items.some((e) => e.reason === 'Provisioned'),
      'a Provisioned event is recorded on the object',
    );
  });

  await t.test('every field the operator wants survives server-side apply', async (t) => {
    const object = (await getTicketEvent(c, namespace, 'club-night')) as TicketEventObject;
    for (const desired of desiredChildren(object, DEFAULT_OPERATOR_SETTINGS.engine)) {
      const got = await kubectl(['get', desired.kind.toLowerCase(), desired.metadata.name, '-n', namespace, '-o', 'json']);
      t.has(JSON.parse(got.stdout), desired, `${desired.kind} ${desired.metadata.name} is as desired`);
    }
  });

  await t.test('a deleted child is put back (drift is repaired)', async (t) => {
    await c.apps.deleteNamespacedDeployment({ namespace, name: 'club-night-engine' });
    const back = await waitFor('the engine Deployment to come back', async () =>
      c.apps.readNamespacedDeployment({ namespace, name: 'club-night-engine' }).catch(() => undefined),
    );
    t.equal(back.spec?.replicas, 1);
  });

  // No controller-manager runs here: the test writes the Deployment's status as one would.
  const reportAvailable = async (available: number, conditions?: k8s.V1DeploymentCondition[]) => {
    const deployment = await c.apps.readNamespacedDeployment({ namespace, name: 'club-night-engine' });
    await c.apps.patchNamespacedDeploymentStatus(
      {
        namespace,
        name: 'club-night-engine',
        body: {
          status: {
            observedGeneration: deployment.metadata?.generation,
            replicas: 1,
            updatedReplicas: 1,
            readyReplicas: available,
            availableReplicas: available,
            unavailableReplicas: 1 - available,
            ...(conditions === undefined ? {} : { conditions }),
          },
        },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  };

  await t.test('a pending sale is Ready only while its controller reports an engine pod available', async (t) => {
    const getsBefore = deploymentGets;
    // The Deployment was just put back (the subtest before): a controller might report on it any
    // moment, so the event is not Ready until its grace is over — then, with none reporting, it is.
    const young = await waitForStatus(c, namespace, 'club-night', 'Ready=False (Deployment not reported on yet)', (o) =>
      /no controller has reported on the engine Deployment club-night-engine yet/.test(
        condition(o.status, 'ShardsAvailable')?.message ?? '',
      ),
    );
    t.match(condition(young.status, 'Ready'), { status: 'False', reason: 'NoEngineAvailable' });
    await waitForStatus(
      c,
      namespace,
      'club-night',
      'Ready=True with no controller reporting (10 s after the Deployment was created)',
      (o) => condition(o.status, 'Ready')?.status === 'True',
      30_000,
    );
    await reportAvailable(0);
    const stuck = await waitForStatus(
      c,
      namespace,
      'club-night',
      'Ready=False (no engine pod)',
      (o) => condition(o.status, 'Ready')?.status === 'False',
    );
    t.match(condition(stuck.status, 'ShardsAvailable'), {
      status: 'False',
      reason: 'NoEngineAvailable',
      message: /0\/1 of Deployment club-night-engine/,
    });
    t.equal(stuck.status?.phase, 'Pending');
    await reportAvailable(1);
    const ready = await waitForStatus(
      c,
      namespace,
      'club-night',
      'Ready=True again',
      (o) => condition(o.status, 'Ready')?.status === 'True',
    );
    t.match(condition(ready.status, 'ShardsAvailable'), { status: 'Unknown', reason: 'SaleNotOpen' });
    t.equal(deploymentGets, getsBefore, 'the Deployment was read from the watch, not with a GET');
  });

  await t.test('a stalled rollout of the engine Deployment degrades the event until it progresses again', async (t) => {
    const getsBefore = deploymentGets;
    // As a controller reports a new ReplicaSet whose pods never come (an image that cannot be
    // pulled), while the old pod still serves; the operator reads it from its Deployment watch.
    const progressing = (status: string, reason: string, message: string): k8s.V1DeploymentCondition[] => [
      { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' },
      { type: 'Progressing', status, reason, message },
    ];
    await reportAvailable(
      1,
      progressing('False', 'ProgressDeadlineExceeded', 'ReplicaSet "club-night-engine-5c8" has timed out progressing.'),
    );
    const stalled = await waitForStatus(
      c,
      namespace,
      'club-night',
      'Degraded=True (rollout stalled)',
      (o) => condition(o.status, 'Degraded')?.reason === 'EngineRolloutStalled',
    );
    t.match(condition(stalled.status, 'Degraded'), {
      status: 'True',
      message:
        /the rollout of the engine Deployment club-night-engine is not progressing: ReplicaSet "club-night-engine-5c8" has timed out progressing/,
    });
    t.match(condition(stalled.status, 'Ready'), { status: 'False', reason: 'EngineRolloutStalled' });
    const events = await c.core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.name=club-night' });
    t.ok(
      events.items.some((e) => e.type === 'Warning' && e.reason === 'EngineRolloutStalled'),
      'a Warning event says so',
    );

    await reportAvailable(
      1,
      progressing('True', 'NewReplicaSetAvailable', 'ReplicaSet "club-night-engine-5c8" has successfully progressed.'),
    );
    const moving = await waitForStatus(
      c,
      namespace,
      'club-night',
      'Ready=True (rollout done)',
      (o) => condition(o.status, 'Ready')?.status === 'True',
    );
    t.match(condition(moving.status, 'Degraded'), { status: 'False', reason: 'AsExpected' });
    t.equal(deploymentGets, getsBefore, 'read from the watch, not with a GET');
  });

  await t.test('opening the sale and starting an engine: status follows shard ownership', async (t) => {
    await patchMerge(c, namespace, 'club-night', {
      spec: { sale: { opensAt: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z') } },
    });
    const open = await waitForStatus(c, namespace, 'club-night', 'phase OnSale', (o) => o.status?.phase === 'OnSale');
    t.match(condition(open.status, 'Degraded'), { status: 'True', reason: 'ShardsUnavailable' }, 'on sale without engines is degraded');

    engine = await startEngine(eventId);
    const ready = await waitForStatus(
      c,
      namespace,
      'club-night',
      'Ready=True with 2/2 shards',
      (o) => condition(o.status, 'Ready')?.status === 'True',
      30_000,
    );
    t.same(ready.status?.shards, { desired: 2, ready: 2 });
    t.equal(ready.status?.summary?.shards, '2/2');
    t.match(condition(ready.status, 'ShardsAvailable'), { status: 'True', reason: 'AllShardsOwned' });

    await engine.stop();
    engine = undefined;
    const gone = await waitForStatus(
      c,
      namespace,
      'club-night',
      'no shard owned after the engine stopped',
      (o) => o.status?.shards?.ready === 0,
      30_000,
    );
    t.match(condition(gone.status, 'ShardsAvailable'), { status: 'False', reason: 'ShardsUnowned' });
    t.match(condition(gone.status, 'Degraded'), { status: 'True', reason: 'ShardsUnavailable' });
    t.match(condition(gone.status, 'Ready'), { status: 'False' });
  });

  await t.test('the large sample provisions 36,600 places in 16 shards', async (t) => {
    const applied = await kubectl(['apply', '--server-side', '-n', namespace, '-f', 'k8s/samples/large.yaml']);
    t.equal(applied.code, 0, applied.stderr);
    const large = await waitForStatus(
      c,
      namespace,
      'stadium-tour',
      'the stadium provisioned',
      (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True',
      30_000,
    );
    t.same(large.status?.seats, { total: 36_600, available: 36_600, held: 0, sold: 0 });
    t.same(large.status?.shards, { desired: 16, ready: 0 });
    const deployment = await c.apps.readNamespacedDeployment({ namespace, name: 'stadium-tour-engine' });
    t.equal(deployment.spec?.replicas, 4);
    t.same(deployment.spec?.template.spec?.containers[0]?.resources, {
      requests: { cpu: '500m', memory: '512Mi' },
      limits: { memory: '1Gi' },
    });
  });

  await t.test('health, readiness and metrics', async (t) => {
    const base = `http://127.0.0.1:${operator.httpPort}`;
    t.equal((await fetch(`${base}/healthz`)).status, 200);
    t.equal((await fetch(`${base}/readyz`)).status, 200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    t.match(metrics, /sentinel_operator_reconciles_total\{result="success"\} [1-9]/);
    t.match(metrics, /sentinel_operator_queue_depth \d/);
    t.match(metrics, /sentinel_operator_leader 1/);
    t.ok(operator.isLeader());
  });

  t.ok(await getTicketEvent(c, namespace, 'club-night'));
});
