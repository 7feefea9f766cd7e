/**
 * Everything the operator asks of the API server, in one place: read and write TicketEvents (and
 * their status and finalizers), apply children with server-side apply, record Events. Errors come
 * out translated (`kube-errors.ts`).
 */
import { hostname } from 'node:os';
import { FIELD_MANAGER, k8s, serverSideApply } from '../adapters/kubernetes/client.js';
import type { TicketEventStatus } from './api/v1alpha1.js';
import { GROUP, KIND, PLURAL, VERSION } from './api/v1alpha1.js';
import type { ChildObject } from './children.js';
import { isNotFound, translateKubernetesError } from './kube-errors.js';
import type { ObjectKey } from './event-id.js';
import type { RecordedEvent } from './plan.js';
import type { TicketEventObject } from './types.js';

/**
 * What there is to know of an event's engine Deployment: that it does not exist (yet), or when it
 * was created and what its controller reports — pods available (ready for the Deployment's
 * minReadySeconds) out of those it asks for; no report while no controller has looked at it (a
 * status without observedGeneration); and, when its rollout of the current spec has stopped
 * progressing (condition Progressing=False, reason ProgressDeadlineExceeded: new pods that cannot be
 * pulled, scheduled or started within the Deployment's progressDeadlineSeconds), the controller's
 * message.
 */
export type EngineAvailability =
  | { readonly found: false }
  | {
      readonly found: true;
      readonly createdAt: Date | undefined;
      readonly report: { readonly available: number; readonly replicas: number } | undefined;
      readonly stalled?: string;
      /**
       * Why its pods cannot even be created, as its controller says (the `ReplicaFailure`
       * condition: a missing ServiceAccount, a quota, an admission webhook).
       */
      readonly failing?: string;
    };

/** Where the reconciler reads the engine Deployment (the gateway's GET, or the reflector's cache). */
export interface EngineDeployments {
  engineAvailability(key: ObjectKey): Promise<EngineAvailability>;
}

/** What a Deployment, as read or watched, says of its engines (`EngineAvailability`). */
export function engineAvailabilityOf(deployment: k8s.V1Deployment): EngineAvailability {
  const { status, metadata, spec } = deployment;
  const report =
    status?.observedGeneration === undefined ? undefined : { available: status.availableReplicas ?? 0, replicas: spec?.replicas ?? 1 };
  const created = metadata?.creationTimestamp;
  // A condition is about the spec the controller last observed: after an edit it may still be the
  // old rollout's, until the controller looks at the new one. (An edit of replicas and image at
  // once: the controller's first sync, a scaling, marks the new generation observed and carries the
  // old conditions over for a moment, until its next sync starts the new rollout.)
  const current = status?.observedGeneration !== undefined && status.observedGeneration >= (metadata?.generation ?? 0);
  const progressing = status?.conditions?.find((c) => c.type === 'Progressing');
  const stalled =
    current && progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded'
      ? (progressing.message ?? 'its progress deadline was exceeded')
      : undefined;
  const replicaFailure = status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  const failing =
    replicaFailure === undefined ? undefined : (replicaFailure.message ?? replicaFailure.reason ?? 'its pods cannot be created');
  return {
    found: true,
    createdAt: created === undefined ? undefined : new Date(created),
    report,
    ...(stalled === undefined ? {} : { stalled }),
    ...(failing === undefined ? {} : { failing }),
  };
}

/** The operator's view of the API server; a port so the reconciler can be tested with a fake. */
export interface KubeGateway extends EngineDeployments {
  getTicketEvent(key: ObjectKey): Promise<TicketEventObject | undefined>;
  /** Replaces the status through the status subresource; fails with a 409 when `resourceVersion` is stale. */
  replaceStatus(object: TicketEventObject, status: TicketEventStatus): Promise<TicketEventObject>;
  /** Sets the finalizer list, guarded by the object's resourceVersion (409 when stale); undefined when the object is gone. */
  setFinalizers(object: TicketEventObject, finalizers: readonly string[]): Promise<TicketEventObject | undefined>;
  /**
   * Server-side apply of a child. With `dryRun` the API server validates and admits it (schema,
   * defaults, admission webhooks) and stores nothing: a refusal shows before anything is written.
   */
  apply(object: ChildObject, options?: { readonly dryRun?: boolean }): Promise<void>;
  /** The owner references of the child's namesake as it exists now; undefined when there is none. */
  ownersOf(object: ChildObject): Promise<readonly OwnerOf[] | undefined>;
  recordEvent(object: TicketEventObject, event: RecordedEvent): Promise<void>;
  /** The engine Deployment's availability (`EngineAvailability`), read with a GET. */
  engineAvailability(key: ObjectKey): Promise<EngineAvailability>;
}

/** What an owner reference says about its owner. */
export interface OwnerOf {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
}

const mergePatch = (): k8s.ConfigurationOptions => k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/** The client-node implementation. */
export class ClientNodeGateway implements KubeGateway {
  private readonly custom: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  private readonly apps: k8s.AppsV1Api;
  private readonly objects: k8s.KubernetesObjectApi;
  private readonly instance: string;

  constructor(kubeConfig: k8s.KubeConfig, instance: string = hostname()) {
    this.custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.apps = kubeConfig.makeApiClient(k8s.AppsV1Api);
    this.objects = k8s.KubernetesObjectApi.makeApiClient(kubeConfig);
    this.instance = instance;
  }

  async getTicketEvent(key: ObjectKey): Promise<TicketEventObject | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, ...key })) as TicketEventObject;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateKubernetesError(error, `read TicketEvent ${key.namespace}/${key.name}`);
    }
  }

  async replaceStatus(object: TicketEventObject, status: TicketEventStatus): Promise<TicketEventObject> {
    const { namespace, name } = object.metadata;
    try {
      const body = { apiVersion: object.apiVersion, kind: object.kind, metadata: object.metadata, spec: object.spec, status };
      return (await this.custom.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
        body,
        fieldManager: FIELD_MANAGER,
      })) as TicketEventObject;
    } catch (error) {
      throw translateKubernetesError(error, `write status of TicketEvent ${namespace}/${name}`);
    }
  }

  async setFinalizers(object: TicketEventObject, finalizers: readonly string[]): Promise<TicketEventObject | undefined> {
    const { namespace, name, resourceVersion } = object.metadata;
    // resourceVersion in a merge patch is a precondition: a stale read gets 409 Conflict, never a lost update.
    const body = { metadata: { resourceVersion, finalizers: [...finalizers] } };
    try {
      return (await this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body, fieldManager: FIELD_MANAGER },
        mergePatch(),
      )) as TicketEventObject;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateKubernetesError(error, `set finalizers of TicketEvent ${namespace}/${name}`);
    }
  }

  async apply(object: ChildObject, options: { readonly dryRun?: boolean } = {}): Promise<void> {
    try {
      if (options.dryRun === true) {
        // The same request as serverSideApply, with dryRun=All: every stage runs, nothing is persisted.
        await this.objects.patch(object as k8s.KubernetesObject, undefined, 'All', FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply);
      } else {
        await serverSideApply(this.objects, object as k8s.KubernetesObject);
      }
    } catch (error) {
      const what = `${options.dryRun === true ? 'dry-run apply' : 'apply'} ${object.kind} ${object.metadata.namespace}/${object.metadata.name}`;
      throw translateKubernetesError(error, what);
    }
  }

  async ownersOf(object: ChildObject): Promise<readonly OwnerOf[] | undefined> {
    const { apiVersion, kind, metadata } = object;
    try {
      const found = await this.objects.read({ apiVersion, kind, metadata: { name: metadata.name, namespace: metadata.namespace } });
      return (found.metadata?.ownerReferences ?? []).map(({ apiVersion, kind, name, uid }) => ({ apiVersion, kind, name, uid }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateKubernetesError(error, `read ${kind} ${metadata.namespace}/${metadata.name}`);
    }
  }

  async engineAvailability(key: ObjectKey): Promise<EngineAvailability> {
    try {
      return engineAvailabilityOf(await this.apps.readNamespacedDeployment(key));
    } catch (error) {
      if (isNotFound(error)) return { found: false };
      throw translateKubernetesError(error, `read Deployment ${key.namespace}/${key.name}`);
    }
  }

  async recordEvent(object: TicketEventObject, event: RecordedEvent): Promise<void> {
    const now = new Date();
    const { namespace, name, uid, resourceVersion } = object.metadata;
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: { apiVersion: object.apiVersion, kind: KIND, name, namespace, uid, resourceVersion },
          type: event.type,
          reason: event.reason,
          message: event.message.slice(0, 1024),
          source: { component: FIELD_MANAGER },
          reportingComponent: `${GROUP}/operator`,
          reportingInstance: this.instance.slice(0, 128),
          action: event.reason,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (error) {
      throw translateKubernetesError(error, `record event ${event.reason} on TicketEvent ${namespace}/${name}`);
    }
  }
}
