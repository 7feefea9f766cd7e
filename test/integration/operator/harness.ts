/**
 * Shared setup of the operator's integration tests, envtest style: the real local API server
 * (`hack/infra.sh`), the real Postgres, the generated CRD installed, one namespace per test file,
 * and the operator running in-process (or as child processes, for leader election).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { k8s, loadKubeConfig } from '../../../src/adapters/kubernetes/client.js';
import { createRootLogger, silentLogger, type Logger } from '../../../src/log.js';
import type { TicketEventStatus } from '../../../src/operator/api/v1alpha1.js';
import { GROUP, PLURAL, VERSION } from '../../../src/operator/api/v1alpha1.js';
import { CRD_NAME } from '../../../src/operator/crd/ticket-event-crd.js';
import { postgresInventory } from '../../../src/operator/inventory-port.js';
import type { KubeGateway } from '../../../src/operator/kube-gateway.js';
import { startOperator, type OperatorHandle, type OperatorSettings } from '../../../src/operator/operator.js';
import { FINALIZER, type TicketEventObject } from '../../../src/operator/types.js';
import { kubeconfigPath, uniqueName } from '../../support/env.js';
import { waitFor } from '../../support/stack.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export { waitFor };

/** The kubectl and helm built by hack/infra.sh (on PATH after `eval "$(hack/infra.sh env)"`). */
export const KUBECTL = process.env['SENTINEL_KUBECTL'] ?? 'kubectl';
export const HELM = process.env['SENTINEL_HELM'] ?? 'helm';

/** Logs of the operator under test: silent unless OPERATOR_TEST_LOG=debug|info. */
export function testLogger(): Logger {
  const level = process.env['OPERATOR_TEST_LOG'];
  return level ? createRootLogger({ level, role: 'operator-test' }) : silentLogger;
}

export interface Cluster {
  readonly kubeConfig: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly apps: k8s.AppsV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly coordination: k8s.CoordinationV1Api;
  readonly objects: k8s.KubernetesObjectApi;
}

/** Clients of the local API server, with the CRD installed and established. */
export async function cluster(): Promise<Cluster> {
  const kubeConfig = loadKubeConfig(kubeconfigPath());
  const objects = k8s.KubernetesObjectApi.makeApiClient(kubeConfig);
  const ext = kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
  // Installed from the committed file, the way a person installs it (client-node's typed
  // serializer would drop the schema's x-kubernetes-* keywords).
  const installed = await kubectl(['apply', '--server-side', '--force-conflicts', '-f', 'crds/sentinel.dev_ticketevents.yaml']);
  if (installed.code !== 0) throw new Error(`installing the CRD failed: ${installed.stderr}`);
  await waitFor(
    'the TicketEvent CRD to be established',
    async () =>
      (await ext.readCustomResourceDefinition({ name: CRD_NAME })).status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      ),
    20_000,
  );
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(k8s.CoreV1Api),
    apps: kubeConfig.makeApiClient(k8s.AppsV1Api),
    custom: kubeConfig.makeApiClient(k8s.CustomObjectsApi),
    coordination: kubeConfig.makeApiClient(k8s.CoordinationV1Api),
    objects,
  };
}

/**
 * Creates a namespace for one test file and returns a cleanup that removes everything in it. No
 * controller-manager runs here, so nothing is garbage-collected: cleanup deletes the children,
 * strips our finalizer from TicketEvents the test left behind, then finalizes the namespace itself.
 */
export async function testNamespace(c: Cluster, prefix: string): Promise<{ namespace: string; cleanup: () => Promise<void> }> {
  const namespace = uniqueName(prefix).toLowerCase().slice(0, 40);
  await c.core.createNamespace({ body: { metadata: { name: namespace, labels: { 'sentinel.dev/test': 'operator' } } } });
  const cleanup = async (): Promise<void> => {
    const ignore = (): undefined => undefined;
    const list = (await c.custom
      .listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace })
      .catch(ignore)) as { items: TicketEventObject[] } | undefined;
    for (const item of list?.items ?? []) {
      await patchMerge(c, namespace, item.metadata.name, { metadata: { finalizers: null } }).catch(ignore);
      await c.custom
        .deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name: item.metadata.name })
        .catch(ignore);
    }
    await c.apps.deleteCollectionNamespacedDeployment({ namespace }).catch(ignore);
    await c.core.deleteCollectionNamespacedConfigMap({ namespace }).catch(ignore);
    const services = await c.core.listNamespacedService({ namespace }).catch(ignore);
    for (const s of services?.items ?? []) await c.core.deleteNamespacedService({ namespace, name: s.metadata?.name ?? '' }).catch(ignore);
    await c.kubeConfig.makeApiClient(k8s.PolicyV1Api).deleteCollectionNamespacedPodDisruptionBudget({ namespace }).catch(ignore);
    await c.coordination.deleteCollectionNamespacedLease({ namespace }).catch(ignore);
    await c.core.deleteCollectionNamespacedEvent({ namespace }).catch(ignore);
    await c.core.deleteNamespace({ name: namespace }).catch(ignore);
    // No namespace controller: drop the `kubernetes` finalizer ourselves so the namespace goes.
    const ns = await c.core.readNamespace({ name: namespace }).catch(ignore);
    if (ns) await c.core.replaceNamespaceFinalize({ name: namespace, body: { ...ns, spec: { finalizers: [] } } }).catch(ignore);
  };
  return { namespace, cleanup };
}

/** Merge-patches a TicketEvent (spec or metadata). */
/** Creates a TicketEvent `name` in `namespace` with `spec` (the API server applies the defaults). */
export async function createTicketEvent(c: Cluster, namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
  await c.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'TicketEvent', metadata: { name }, spec },
  });
}

export async function patchMerge(c: Cluster, namespace: string, name: string, body: unknown): Promise<TicketEventObject> {
  return (await c.custom.patchNamespacedCustomObject(
    { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  )) as TicketEventObject;
}

export async function getTicketEvent(c: Cluster, namespace: string, name: string): Promise<TicketEventObject | undefined> {
  try {
    return (await c.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace,
      name,
    })) as TicketEventObject;
  } catch (error) {
    if ((error as { code?: number }).code === 404) return undefined;
    throw error;
  }
}

/** The status condition of a type. */
export function condition(
  status: TicketEventStatus | undefined,
  type: string,
): { status: string; reason: string; message: string } | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** Waits until the TicketEvent's status satisfies `check`; returns the object. */
export async function waitForStatus(
  c: Cluster,
  namespace: string,
  name: string,
  what: string,
  check: (object: TicketEventObject) => boolean,
  timeoutMs = 20_000,
): Promise<TicketEventObject> {
  let last: TicketEventObject | undefined;
  try {
    return await waitFor(
      what,
      async () => {
        last = await getTicketEvent(c, namespace, name);
        return last !== undefined && check(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\nlast status: ${JSON.stringify(last?.status, null, 1)}`);
  }
}

/**
 * The first Event of `reason` about the TicketEvent `name`, waited for: the operator records its
 * Events after it writes the status, so a test that saw the status may not see the Event yet.
 */
export async function recordedEvent(
  c: Cluster,
  namespace: string,
  name: string,
  reason: string,
  timeoutMs = 10_000,
): Promise<k8s.CoreV1Event> {
  return waitFor(
    `an Event ${reason} about ${name}`,
    async () => (await c.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name},reason=${reason}` })).items[0],
    timeoutMs,
  );
}

/** Runs the operator in-process for one namespace with test timings. */
export async function runOperator(
  c: Cluster,
  pool: pg.Pool,
  namespace: string,
  settings: Partial<OperatorSettings> = {},
  gateway?: KubeGateway,
): Promise<OperatorHandle> {
  return startOperator({
    kubeConfig: c.kubeConfig,
    ...(gateway === undefined ? {} : { gateway }),
    inventory: postgresInventory(pool),
    log: testLogger(),
    processMetrics: false,
    settings: {
      watchNamespace: namespace,
      identity: uniqueName('operator'),
      leaderElection: {
        enabled: true,
        leaseName: 'sentinel-operator',
        leaseNamespace: namespace,
        leaseDurationMs: 3_000,
        renewDeadlineMs: 2_000,
        retryPeriodMs: 500,
      },
      refreshIntervalMs: 500,
      drainPollMs: 250,
      drainTimeoutMs: 30_000,
      resyncMs: 30_000,
      backoff: { baseMs: 100, maxMs: 2_000 },
      http: { port: 0, host: '127.0.0.1' },
      ...settings,
    },
  });
}

/** Runs a command; never throws (the result says how it went). */
export function run(command: string, args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, [...args], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024, env: process.env }, (error, stdout, stderr) => {
      const code =
        error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code as number) : 1;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export const kubectl = (args: readonly string[], input?: string) => run(KUBECTL, ['--kubeconfig', kubeconfigPath(), ...args], input);

export { FINALIZER };
