/** What the operator makes of an engine Deployment, and where it reads one (the reflector's cache, or a GET). */
import t from 'tap';
import type { k8s } from '../../../src/adapters/kubernetes/client.js';
import { CachedEngineDeployments, type ObjectCache } from '../../../src/operator/engine-deployments.js';
import { engineAvailabilityOf, type EngineAvailability } from '../../../src/operator/kube-gateway.js';

const deployment = (generation: number, status: k8s.V1DeploymentStatus | undefined): k8s.V1Deployment => ({
  metadata: { name: 'arena-engine', namespace: 'shows', generation, creationTimestamp: '2030-05-01T08:00:00Z' as unknown as Date },
  spec: { replicas: 2, selector: {}, template: {} },
  ...(status === undefined ? {} : { status }),
});
const timedOut: k8s.V1DeploymentCondition = {
  type: 'Progressing',
  status: 'False',
  reason: 'ProgressDeadlineExceeded',
  message: 'ReplicaSet "arena-engine-7d9" has timed out progressing.',
};

t.test('a Deployment as read or watched: created when, what its controller reports, and whether its rollout stalled', async (t) => {
  t.same(engineAvailabilityOf(deployment(1, undefined)), {
    found: true,
    createdAt: new Date('2030-05-01T08:00:00Z'),
    report: undefined,
  });
  t.match(engineAvailabilityOf(deployment(1, { observedGeneration: 1, availableReplicas: 1 })), { report: { available: 1, replicas: 2 } });
  t.match(engineAvailabilityOf(deployment(3, { observedGeneration: 3, availableReplicas: 2, conditions: [timedOut] })), {
    stalled: 'ReplicaSet "arena-engine-7d9" has timed out progressing.',
  });
  const replicaFailure = {
    type: 'ReplicaFailure',
    status: 'True',
    reason: 'FailedCreate',
    message: 'serviceaccount "sentinel-engine" not found',
  };
  t.match(engineAvailabilityOf(deployment(1, { observedGeneration: 1, conditions: [replicaFailure] })), {
    failing: 'serviceaccount "sentinel-engine" not found',
  });
  t.notOk(
    'failing' in engineAvailabilityOf(deployment(1, { observedGeneration: 1, conditions: [{ ...replicaFailure, status: 'False' }] })),
  );
  const edited = engineAvailabilityOf(deployment(4, { observedGeneration: 3, availableReplicas: 2, conditions: [timedOut] }));
  t.notOk('stalled' in edited, 'a stall of the rollout before the last edit says nothing of the edit');
  for (const condition of [
    { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
    { type: 'Progressing', status: 'Unknown', reason: 'DeploymentPaused' },
    { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable' },
  ]) {
    const seen = engineAvailabilityOf(deployment(1, { observedGeneration: 1, conditions: [condition] }));
    t.notOk('stalled' in seen, `${condition.type}=${condition.status} ${condition.reason} is no stall`);
  }
});

t.test('engine Deployments are read from the cache once it has listed, through the API server before', async (t) => {
  const gets: string[] = [];
  const direct = {
    async engineAvailability(key: { namespace: string; name: string }): Promise<EngineAvailability> {
      gets.push(`${key.namespace}/${key.name}`);
      return { found: true, createdAt: undefined, report: { available: 9, replicas: 9 } };
    },
  };
  const objects = new Map<string, k8s.KubernetesObject>([
    ['shows/arena-engine', deployment(1, { observedGeneration: 1, availableReplicas: 2 })],
  ]);
  const cache: ObjectCache & { hasSynced: boolean } = { hasSynced: false, get: (namespace, name) => objects.get(`${namespace}/${name}`) };
  const engines = new CachedEngineDeployments(direct);
  const key = { namespace: 'shows', name: 'arena-engine' };

  t.match(await engines.engineAvailability(key), { report: { available: 9 } }, 'no cache: a GET');
  engines.use(cache);
  t.match(await engines.engineAvailability(key), { report: { available: 9 } }, 'a cache that has not listed yet: a GET');
  cache.hasSynced = true;
  t.match(await engines.engineAvailability(key), { report: { available: 2, replicas: 2 } }, 'listed: from the cache');
  t.same(await engines.engineAvailability({ namespace: 'shows', name: 'other-engine' }), { found: false }, 'not in the cache: not there');
  engines.use(undefined);
  t.match(await engines.engineAvailability(key), { report: { available: 9 } }, 'cache dropped (leadership lost): a GET again');
  t.same(gets, ['shows/arena-engine', 'shows/arena-engine', 'shows/arena-engine']);
});
