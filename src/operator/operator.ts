/**
 * The operator process: leader election, and while leading, the TicketEvent controller (reflectors
 * feeding a work queue, workers running the reconciler); health, readiness and metrics over HTTP
 * the whole time. `startOperator` is what `sentinel operator` runs and what tests run in-process.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { k8s } from '../adapters/kubernetes/client.js';
import { startProbeServer } from '../engine/http.js';
import { withDeadline } from '../deadline.js';
import type { Logger } from '../log.js';
import { GROUP, KIND, PLURAL, VERSION } from './api/v1alpha1.js';
import { DEFAULT_ENGINE, LABELS, MANAGED_BY, type EngineDefaults } from './children.js';
import { Controller } from './controller.js';
import { queueKeyOf } from './event-id.js';
import type { InventoryPort } from './inventory-port.js';
import { ClientNodeGateway, type KubeGateway } from './kube-gateway.js';
import { LeaderElector, type LeaderElectionConfig } from './leader-election.js';
import { OperatorMetrics } from './metrics.js';
import { CachedEngineDeployments } from './engine-deployments.js';
import { Reflector, type ReflectorSource } from './reflector.js';
import { TicketEventReconciler } from './reconciler.js';
import { WorkQueue, type Backoff } from './work-queue.js';

/** Longest wait for in-flight reconciles when the operator stops (ms). */
const STOP_CONTROLLERS_TIMEOUT_MS = 15_000;

/** Every setting of the operator, with its default in DEFAULT_OPERATOR_SETTINGS. */
export interface OperatorSettings {
  /** Namespace whose TicketEvents are reconciled; empty for all namespaces. */
  readonly watchNamespace: string;
  /** This process's identity in the leader Lease and in Events (default `<hostname>-<pid>`). */
  readonly identity: string;
  /** Leader election; `enabled: false` runs the controller at once (one replica only!). */
  readonly leaderElection: { readonly enabled: boolean } & Omit<LeaderElectionConfig, 'identity'>;
  /** Reconciles running in parallel (each on a different object). */
  readonly workers: number;
  /** Every known TicketEvent is reconciled at least this often, even when nothing changes. */
  readonly resyncMs: number;
  /** Counts and shard ownership are refreshed this often while a sale is pending or open. */
  readonly refreshIntervalMs: number;
  /**
   * Deletion waits this long after closing the sale for engines to release their shards before
   * archiving anyway; it never lets go while the event's outbox has unpublished rows.
   */
  readonly drainTimeoutMs: number;
  /** Deletion looks at shard ownership and the outbox this often while it waits. */
  readonly drainPollMs: number;
  /** Backoff of failed reconciles. */
  readonly backoff: Backoff;
  /** Engine pod defaults. */
  readonly engine: EngineDefaults;
  /** Health, readiness and metrics server; undefined for none. Port 0 picks a free port. */
  /** `host` absent: every address (see `startProbeServer`). */
  readonly http: { readonly port: number; readonly host?: string } | undefined;
}

export const DEFAULT_OPERATOR_SETTINGS: OperatorSettings = Object.freeze({
  watchNamespace: '',
  identity: 'sentinel-operator',
  leaderElection: Object.freeze({
    enabled: true,
    leaseName: 'sentinel-operator',
    leaseNamespace: 'default',
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
  }),
  workers: 4,
  resyncMs: 10 * 60_000,
  refreshIntervalMs: 10_000,
  drainTimeoutMs: 2 * 60_000,
  drainPollMs: 2_000,
  backoff: Object.freeze({ baseMs: 200, maxMs: 5 * 60_000 }),
  engine: DEFAULT_ENGINE,
  http: Object.freeze({ port: 9464 }),
});

/** Why the operator stopped: asked to, or it lost the leader Lease (the process should exit and restart). */
export type OperatorExit = 'stopped' | 'lost-leadership';

export interface StartOperatorOptions {
  readonly kubeConfig: k8s.KubeConfig;
  readonly inventory: InventoryPort;
  readonly log: Logger;
  readonly settings?: Partial<OperatorSettings>;
  /** Replaces the API gateway (tests). */
  readonly gateway?: KubeGateway;
  /** Collect process metrics (default true; tests running two operators in one process turn it off). */
  readonly processMetrics?: boolean;
}

/** A running operator. */
export interface OperatorHandle {
  /** Settles when the operator stops, with the reason. */
  readonly done: Promise<OperatorExit>;
  /** Stops reconciling, releases the Lease, closes the HTTP server. Idempotent. */
  stop(): Promise<void>;
  isLeader(): boolean;
  /** The port the HTTP server listens on (useful with port 0). */
  readonly httpPort: number | undefined;
  readonly metrics: OperatorMetrics;
}

/** Starts an operator: HTTP at once, the controller when (and while) it leads. */
export async function startOperator(options: StartOperatorOptions): Promise<OperatorHandle> {
  const settings: OperatorSettings = { ...DEFAULT_OPERATOR_SETTINGS, ...options.settings };
  const log = options.log.child({ identity: settings.identity });
  const metrics = new OperatorMetrics({ processMetrics: options.processMetrics ?? true });
  const gateway = options.gateway ?? new ClientNodeGateway(options.kubeConfig, settings.identity);
  const engineDeployments = new CachedEngineDeployments(gateway);
  const reconciler = new TicketEventReconciler({
    gateway,
    engines: engineDeployments,
    inventory: options.inventory,
    log,
    settings: {
      engine: settings.engine,
      refreshIntervalMs: settings.refreshIntervalMs,
      drainTimeoutMs: settings.drainTimeoutMs,
      drainPollMs: settings.drainPollMs,
    },
  });

  let running: { controller: Controller; reflectors: Reflector[] } | undefined;
  let synced = false;
  const startControllers = (): void => {
    const queue = new WorkQueue(settings.backoff);
    const enqueue = (key: string): void => {
      queue.add(key);
      metrics.queueDepth.set(queue.depth);
    };
    const reflectors = sources(options.kubeConfig, settings.watchNamespace).map(
      (source) => new Reflector({ kubeConfig: options.kubeConfig, source, enqueue, log, resyncMs: settings.resyncMs }),
    );
    engineDeployments.use(reflectors.find((r) => r.caches));
    const controller = new Controller({
      queue,
      reconcile: (key) => reconciler.reconcile(key),
      workers: settings.workers,
      log,
      metrics,
      terminalRetryMs: settings.refreshIntervalMs,
    });
    running = { controller, reflectors };
    synced = false;
    for (const reflector of reflectors) reflector.start();
    void Promise.all(reflectors.map((r) => r.synced)).then(() => {
      synced = true;
      log.info('Caches synced; reconciling');
    });
    controller.start();
    log.info({ workers: settings.workers, namespace: settings.watchNamespace || '(all)' }, 'Started the TicketEvent controller');
  };
  const stopControllers = async (): Promise<void> => {
    const current = running;
    running = undefined;
    if (current === undefined) return;
    engineDeployments.use(undefined);
    await Promise.all(current.reflectors.map((r) => r.stop()));
    await current.controller.stop();
    log.info('Stopped the TicketEvent controller');
  };

  let resolveDone!: (exit: OperatorExit) => void;
  const done = new Promise<OperatorExit>((resolve) => (resolveDone = resolve));
  let stopping: Promise<void> | undefined;
  let server: Server | undefined;

  let elector: LeaderElector | undefined;
  if (settings.leaderElection.enabled) {
    elector = new LeaderElector(
      options.kubeConfig,
      { ...settings.leaderElection, identity: settings.identity },
      {
        onStartedLeading: () => {
          if (stopping !== undefined) return;
          metrics.leader.set(1);
          startControllers();
        },
        onStoppedLeading: (reason) => {
          metrics.leader.set(0);
          if (reason === 'lost') {
            // Like controller-runtime: a replica that lost its Lease stops working at once and exits,
            // so it can never act alongside the new leader.
            void stop('lost-leadership');
          }
        },
      },
      log,
    );
  }

  const stop = (exit: OperatorExit = 'stopped'): Promise<void> => {
    stopping ??= (async () => {
      // Bounded: a reconcile stuck in a call that never returns must not keep a replica that lost
      // its Lease from exiting (what it was writing, the new leader's next reconcile puts right).
      // One that lost it has only until another replica can take it — the lease duration less the
      // renew deadline, counted from its last renewal — so that the two never reconcile together.
      const { leaseDurationMs, renewDeadlineMs } = settings.leaderElection;
      const deadlineMs =
        exit === 'lost-leadership'
          ? Math.max(0, Math.min(STOP_CONTROLLERS_TIMEOUT_MS, leaseDurationMs - renewDeadlineMs - 1000))
          : STOP_CONTROLLERS_TIMEOUT_MS;
      const stoppedInTime = await withDeadline(stopControllers(), deadlineMs).then(
        () => true,
        (error: unknown) => {
          log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Controllers did not stop in time; exiting anyway');
          return false;
        },
      );
      // A replica whose work has stopped hands a lost Lease on at once; one still winding down
      // leaves it to expire, so the new leader cannot start before this one's bound above.
      await elector?.stop({ releaseAfterLoss: stoppedInTime });
      metrics.leader.set(0);
      if (server !== undefined) await new Promise<void>((resolve) => server?.close(() => resolve()));
      log.info({ exit }, 'Operator stopped');
      resolveDone(exit);
    })();
    return stopping;
  };

  if (settings.http !== undefined) {
    server = await startProbeServer({
      port: settings.http.port,
      ...(settings.http.host === undefined ? {} : { host: settings.http.host }),
      registry: metrics.registry,
      // A standby is ready (it is healthy and waiting); a leader once its caches have synced.
      ready: () => stopping === undefined && (running === undefined || synced),
    });
  }
  const httpPort = server === undefined ? undefined : (server.address() as AddressInfo).port;

  if (elector !== undefined) elector.start();
  else startControllers();
  log.info({ httpPort, leaderElection: settings.leaderElection.enabled }, 'Operator started');

  return {
    done,
    stop: () => stop('stopped'),
    isLeader: () => (elector === undefined ? running !== undefined : elector.isLeader),
    httpPort,
    metrics,
  };
}

/** What the controller watches: TicketEvents, and the Deployments they own (drift is repaired). */
function sources(kubeConfig: k8s.KubeConfig, namespace: string): ReflectorSource[] {
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const apps = kubeConfig.makeApiClient(k8s.AppsV1Api);
  const scope = namespace === '' ? '' : `/namespaces/${namespace}`;
  const selector = `${LABELS.managedBy}=${MANAGED_BY}`;
  const ownerKeys = (object: k8s.KubernetesObject): string[] =>
    (object.metadata?.ownerReferences ?? [])
      .filter((ref) => ref.kind === KIND && ref.apiVersion.startsWith(`${GROUP}/`))
      .map((ref) => queueKeyOf({ namespace: object.metadata?.namespace ?? '', name: ref.name }));
  return [
    {
      name: PLURAL,
      path: `/apis/${GROUP}/${VERSION}${scope}/${PLURAL}`,
      list: async () =>
        (namespace === ''
          ? await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
          : await custom.listNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              plural: PLURAL,
              namespace,
            })) as k8s.KubernetesListObject<k8s.KubernetesObject>,
      keysOf: (object) => [queueKeyOf({ namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' })],
      // Everything but the status (and the resourceVersion that every write moves): the operator
      // writes the status itself, and refreshes it on its own schedule (refresh-interval).
      relevantOf: ({ metadata }) =>
        JSON.stringify([
          metadata?.uid,
          metadata?.generation,
          metadata?.deletionTimestamp,
          metadata?.finalizers,
          metadata?.labels,
          metadata?.annotations,
        ]),
    },
    {
      name: 'deployments',
      path: `/apis/apps/v1${scope}/deployments`,
      labelSelector: selector,
      list: async () =>
        (namespace === ''
          ? await apps.listDeploymentForAllNamespaces({ labelSelector: selector })
          : await apps.listNamespacedDeployment({ namespace, labelSelector: selector })) as k8s.KubernetesListObject<k8s.KubernetesObject>,
      keysOf: ownerKeys,
      // The reconciler reads the engine Deployments here (CachedEngineDeployments).
      cache: true,
    },
  ];
}
