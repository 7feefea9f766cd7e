/**
 * The chart: `helm lint`, and `helm template … | kubectl apply --dry-run=server -f -` against the
 * local API server, for the default values and for a values file that sets every option.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { k8s, loadKubeConfig } from '../../../src/adapters/kubernetes/client.js';
import { GROUP, PLURAL, VERSION } from '../../../src/operator/api/v1alpha1.js';
import { kubeconfigPath, uniqueName } from '../../support/env.js';
import { testDatabase } from '../../support/stack.js';
import {
  cluster,
  createTicketEvent,
  condition,
  getTicketEvent,
  HELM,
  kubectl,
  ROOT,
  run,
  runOperator,
  waitFor,
  waitForStatus,
} from './harness.js';

const LEADER = { enabled: true, leaseNamespace: '', leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };

const CHART = 'charts/sentinel';

/** The objects of a `helm template` output (empty documents left out). */
const objectsOf = (manifests: string): k8s.KubernetesObject[] =>
  (k8s.loadAllYaml(manifests) as (k8s.KubernetesObject | null)[]).filter((o): o is k8s.KubernetesObject => o !== null && o !== undefined);
const FULL = 'charts/sentinel/ci/full-values.yaml';
/** Namespaces the full values file names (watchNamespace, engine.namespaces): a dry run needs them to exist. */
const FULL_NAMESPACES = ['sentinel-full-events', 'sentinel-full-events-2'];

t.test('the Helm chart lints and its output is accepted by the API server', async (t) => {
  const c = await cluster();
  const namespace = uniqueName('op-helm').toLowerCase();
  const created: string[] = [];
  for (const name of [namespace, ...FULL_NAMESPACES]) {
    const exists = await c.core.readNamespace({ name }).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await c.core.createNamespace({ body: { metadata: { name } } });
      created.push(name);
    }
  }
  t.teardown(async () => {
    for (const name of created) {
      await c.core.deleteNamespace({ name }).catch(() => undefined);
      const ns = await c.core.readNamespace({ name }).catch(() => undefined);
      if (ns) await c.core.replaceNamespaceFinalize({ name, body: { ...ns, spec: { finalizers: [] } } }).catch(() => undefined);
    }
  });

  for (const [what, extra] of [
    ['default values', [] as string[]],
    ['every option set', ['-f', FULL]],
  ] as const) {
    await t.test(what, async (t) => {
      const lint = await run(HELM, ['lint', '--strict', CHART, ...extra]);
      t.equal(lint.code, 0, 'helm lint --strict', { output: lint.stdout + lint.stderr });
      const rendered = await run(HELM, [
        'template',
        'sentinel',
        CHART,
        '--namespace',
        namespace,
        '--include-crds',
        '--kube-version',
        '1.34.4',
        ...extra,
      ]);
      t.equal(rendered.code, 0, 'helm template', { stderr: rendered.stderr });
      const applied = await kubectl(['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
      t.equal(applied.code, 0, 'kubectl apply --dry-run=server', { stderr: applied.stderr });
      const kinds = applied.stdout.split('\n').filter((l) => l.includes('(server dry run)'));
      t.ok(kinds.length >= 15, `${kinds.length} objects accepted`);
      for (const kind of [
        'deployment.apps/',
        'poddisruptionbudget.policy/',
        'serviceaccount/',
        'customresourcedefinition.apiextensions.k8s.io/ticketevents.sentinel.dev',
      ]) {
        t.ok(
          kinds.some((l) => l.includes(kind)),
          `renders ${kind}`,
        );
      }
    });
  }

  await t.test('k8s/sentinel.yaml is the chart rendered now, and the API server accepts it', async (t) => {
    const rendered = await run('bash', ['k8s/render.sh', '--stdout']);
    t.equal(rendered.code, 0, 'k8s/render.sh', { stderr: rendered.stderr });
    const committed = await readFile(join(ROOT, 'k8s/sentinel.yaml'), 'utf8');
    t.equal(committed, rendered.stdout, 'k8s/sentinel.yaml is up to date (bash k8s/render.sh)');
    const applied = await kubectl(
      ['apply', '--dry-run=server', '-n', namespace, '-f', '-'],
      committed.replaceAll('namespace: sentinel\n', `namespace: ${namespace}\n`),
    );
    t.equal(applied.code, 0, 'kubectl apply --dry-run=server', { stderr: applied.stderr });
  });

  await t.test("engine pods get the chart's imagePullSecrets, through the engine ServiceAccount of every namespace", async (t) => {
    // The operator puts none on the engine pod spec: the ServiceAccount admission adds the
    // ServiceAccount's to each pod created with it. Without them, engines of a private registry
    // stayed in ImagePullBackOff while the operator and the ingress pulled fine.
    const [other] = FULL_NAMESPACES;
    const rendered = await run(HELM, [
      'template',
      'sentinel',
      CHART,
      '--namespace',
      namespace,
      '--set',
      'imagePullSecrets[0].name=x',
      '--set',
      `engine.namespaces={${namespace},${other}}`,
    ]);
    t.equal(rendered.code, 0, 'helm template', { stderr: rendered.stderr });
    const objects = objectsOf(rendered.stdout);
    const engineAccounts = objects.filter((o) => o.kind === 'ServiceAccount' && o.metadata?.name === 'sentinel-engine');
    t.same(
      engineAccounts.map((o) => o.metadata?.namespace),
      [namespace, other],
      'one engine ServiceAccount per engine namespace',
    );
    for (const account of engineAccounts) {
      t.same(
        (account as k8s.V1ServiceAccount).imagePullSecrets,
        [{ name: 'x' }],
        `on the engine ServiceAccount in ${account.metadata?.namespace}`,
      );
    }
    for (const deployment of objects.filter((o): o is k8s.V1Deployment => o.kind === 'Deployment')) {
      t.same(deployment.spec?.template.spec?.imagePullSecrets, [{ name: 'x' }], `and on the pods of ${deployment.metadata?.name}`);
    }
    const none = await run(HELM, [
      'template',
      'sentinel',
      CHART,
      '--namespace',
      namespace,
      '--show-only',
      'templates/engine-namespaces.yaml',
    ]);
    const account = objectsOf(none.stdout).find((o) => o.kind === 'ServiceAccount') as k8s.V1ServiceAccount | undefined;
    t.ok(account !== undefined && account.imagePullSecrets === undefined, 'none by default');
  });

  await t.test('a release name of 53 characters (the most Helm takes): every name fits the API server', async (t) => {
    const release = `${'r'.repeat(20)}-${'x'.repeat(32)}`;
    const withChartName = `sentinel-${'y'.repeat(44)}`;
    t.equal(release.length, 53);
    t.equal(withChartName.length, 53);
    for (const [what, name, extra] of [
      ['default values', release, [] as string[]],
      ['every option set but the names', release, ['-f', FULL, '--set', 'fullnameOverride=', '--set', 'nameOverride=']],
      ['a release name that contains the chart name', withChartName, [] as string[]],
    ] as const) {
      const rendered = await run(HELM, ['template', name, CHART, '--namespace', namespace, '--include-crds', ...extra]);
      t.equal(rendered.code, 0, `helm template (${what})`, { stderr: rendered.stderr });
      const objects = objectsOf(rendered.stdout);
      t.ok(objects.length >= 15, `${what}: ${objects.length} objects`);
      for (const object of objects) {
        const objectName = object.metadata?.name ?? '';
        t.ok(objectName.length <= 63, `${what}: ${object.kind} ${objectName} has ${objectName.length} characters`);
        // A Service name must be a DNS-1035 label (its DNS name is made of it).
        if (object.kind === 'Service')
          t.match(objectName, /^[a-z]([-a-z0-9]*[a-z0-9])?$/, `${what}: Service ${objectName} is a DNS-1035 label`);
      }
      if (extra.length === 0) {
        const applied = await kubectl(['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
        t.equal(applied.code, 0, `${what}: the API server accepts every object (kubectl apply --dry-run=server)`, {
          stderr: applied.stderr,
        });
      }
    }
  });

  await t.test('more than one operator replica without leader election fails the render', async (t) => {
    const twoLeaders = await run(HELM, ['template', 'sentinel', CHART, '--set', 'operator.leaderElection.enabled=false']);
    t.not(twoLeaders.code, 0, 'refused with the default 2 replicas');
    t.match(
      twoLeaders.stderr,
      /operator\.replicas is 2 but operator\.leaderElection\.enabled is false: every replica would reconcile the same TicketEvents at once/,
    );
    const one = await run(HELM, [
      'template',
      'sentinel',
      CHART,
      '--set',
      'operator.leaderElection.enabled=false',
      '--set',
      'operator.replicas=1',
    ]);
    t.equal(one.code, 0, 'one replica needs no leader election', { stderr: one.stderr });
    t.match(one.stdout, /--leader-elect=false/);
  });

  await t.test('the schema refuses a typo and a bad value', async (t) => {
    const typo = await run(HELM, ['lint', CHART, '--set', 'operator.replica=3']);
    t.not(typo.code, 0);
    t.match(typo.stdout + typo.stderr, /additional properties 'replica' not allowed/);
    const bad = await run(HELM, ['lint', CHART, '--set', 'config.logLevel=loud']);
    t.not(bad.code, 0);
    t.match(bad.stdout + bad.stderr, /logLevel.*must be one of/);
  });

  await t.test('least privilege: the operator may do what it needs and nothing else', async (t) => {
    const rendered = await run(HELM, [
      'template',
      'sentinel',
      CHART,
      '--namespace',
      namespace,
      '--show-only',
      'templates/operator-rbac.yaml',
    ]);
    const applied = await kubectl(['apply', '-f', '-'], rendered.stdout);
    t.equal(applied.code, 0, 'RBAC applied', { stderr: applied.stderr });
    t.teardown(async () => {
      await kubectl(['delete', 'clusterrole,clusterrolebinding', 'sentinel-operator', '--ignore-not-found']);
    });
    const as = ['--as', `system:serviceaccount:${namespace}:sentinel-operator`];
    const can = async (...args: string[]) => (await kubectl(['auth', 'can-i', ...args, ...as])).stdout.trim();
    t.equal(await can('update', 'ticketevents.sentinel.dev', '--subresource=status', '-n', 'anywhere'), 'yes');
    t.equal(await can('update', 'ticketevents.sentinel.dev', '-n', 'anywhere'), 'no', 'finalizers go on with a patch');
    t.equal(await can('update', 'deployments.apps', '-n', 'anywhere'), 'no', 'children are applied (patch), never replaced');
    t.equal(await can('update', 'ticketevents.sentinel.dev', '--subresource=finalizers', '-n', 'anywhere'), 'yes');
    t.equal(await can('patch', 'deployments.apps', '-n', 'anywhere'), 'yes');
    t.equal(await can('update', 'leases.coordination.k8s.io', '-n', namespace), 'yes');
    t.equal(await can('update', 'leases.coordination.k8s.io', '-n', 'kube-system'), 'no', 'leases only in its own namespace');
    t.equal(await can('delete', 'deployments.apps', '-n', 'anywhere'), 'no', 'garbage collection deletes children, not the operator');
    t.equal(await can('get', 'secrets', '-n', namespace), 'no', 'no secrets');
    t.equal(await can('create', 'pods', '-n', 'anywhere'), 'no');

    // And it is enough: the operator, acting as that ServiceAccount, does its whole job.
    const kubeConfig = loadKubeConfig(kubeconfigPath());
    kubeConfig.users = kubeConfig.users.map((u) => ({ ...u, impersonateUser: `system:serviceaccount:${namespace}:sentinel-operator` }));
    const pool = await testDatabase();
    const operator = await runOperator({ ...c, kubeConfig }, pool, namespace, {
      leaderElection: { ...LEADER, leaseName: 'sentinel-operator', leaseNamespace: namespace },
    });
    t.teardown(async () => {
      await operator.stop();
      await pool.end();
      await kubectl(['delete', 'te,deploy,cm,svc,pdb,lease,events', '--all', '-n', namespace]);
    });
    await createTicketEvent(c, namespace, 'rbac', {
      displayName: 'RBAC',
      sale: { opensAt: '2030-01-01T00:00:00Z', closesAt: '2030-01-02T00:00:00Z' },
      layout: { pools: [{ id: 'GA', capacity: 5 }] },
    });
    const status = await waitForStatus(
      c,
      namespace,
      'rbac',
      'provisioned under the chart RBAC',
      (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True',
    );
    t.ok(status.metadata.finalizers?.includes('sentinel.dev/inventory'), 'finalizer set (ticketevents patch)');
    t.ok(await c.apps.readNamespacedDeployment({ namespace, name: 'rbac-engine' }), 'Deployment applied');
    t.ok((await c.core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.name=rbac' })).items.length > 0, 'Events recorded');
    t.ok(operator.isLeader(), 'Lease acquired');
    await c.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name: 'rbac' });
    await waitFor('the TicketEvent to go', async () => (await getTicketEvent(c, namespace, 'rbac')) === undefined);
    t.pass('finalizer removed');
  });
});
