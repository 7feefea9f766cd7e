/**
 * The objects a TicketEvent owns, as pure builders (desired state only; server-side apply makes the
 * world match). Names are deterministic, every child carries a controller owner reference, and the
 * engine pods are non-root with a read-only root filesystem.
 */
import { createHash } from 'node:crypto';
import { API_VERSION, KIND } from './api/v1alpha1.js';
import { eventIdOf } from './event-id.js';
import type { TicketEventObject } from './types.js';

/** Engine pods of an event whose spec does not say (the CRD defaults it the same). */
export const DEFAULT_ENGINE_REPLICAS = 2;

/** A Kubernetes object as sent to server-side apply. */
export interface ChildObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace: string; readonly [field: string]: unknown };
  readonly [field: string]: unknown;
}

/** Operator-wide settings of engine pods; a TicketEvent's `spec.engine` overrides some of them. */
export interface EngineDefaults {
  /** Engine container image (the same image as the operator: one image, every role). */
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** ServiceAccount of engine pods, in the event's namespace. */
  readonly serviceAccountName: string;
  /** ConfigMap with shared engine settings in the event's namespace (optional: pods start without it). */
  readonly configMapName: string;
  /** Secret with engine credentials in the event's namespace (optional: pods start without it). */
  readonly secretName: string;
  /** Resources when the TicketEvent names none. */
  readonly resources: {
    readonly requests: Readonly<Record<string, string>>;
    readonly limits: Readonly<Record<string, string>>;
  };
  /** Port of the engine's /metrics, /healthz and /readyz. */
  readonly metricsPort: number;
  /**
   * A digest of what the shared ConfigMap and Secret hold, when whoever writes them says (the
   * chart does): put on the pod template, so that a change of them rolls the engines, which read
   * them only at start. Without it, a changed database URL would reach new engine pods only.
   */
  readonly settingsHash?: string;
}

/** Sensible engine defaults for a laptop cluster; the chart sets its own. */
export const DEFAULT_ENGINE: EngineDefaults = Object.freeze({
  image: 'ghcr.io/sentinel-dev/sentinel:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  serviceAccountName: 'sentinel-engine',
  configMapName: 'sentinel-engine',
  secretName: 'sentinel-engine',
  resources: Object.freeze({ requests: Object.freeze({ cpu: '250m', memory: '256Mi' }), limits: Object.freeze({ memory: '512Mi' }) }),
  metricsPort: 9464,
});

/** Label and annotation keys the operator sets. */
export const LABELS = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  instance: 'app.kubernetes.io/instance',
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
  ticketEvent: 'sentinel.dev/ticket-event',
} as const;
export const MANAGED_BY = 'sentinel-operator';
export const EVENT_ID_ANNOTATION = 'sentinel.dev/event-id';
export const CONFIG_HASH_ANNOTATION = 'sentinel.dev/config-hash';
export const SETTINGS_HASH_ANNOTATION = 'sentinel.dev/engine-settings-hash';

/** Deterministic child names. */
export function childNames(name: string): {
  readonly engine: string;
  readonly config: string;
  readonly metrics: string;
  readonly budget: string;
} {
  return { engine: `${name}-engine`, config: `${name}-engine`, metrics: `${name}-engine-metrics`, budget: `${name}-engine` };
}

/** The labels that select an event's engine pods (immutable once a Deployment exists). */
export function engineSelector(name: string): Record<string, string> {
  return { [LABELS.name]: 'sentinel', [LABELS.component]: 'engine', [LABELS.instance]: name };
}

function labelsOf(object: TicketEventObject): Record<string, string> {
  return {
    ...engineSelector(object.metadata.name),
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.partOf]: 'sentinel',
    [LABELS.ticketEvent]: object.metadata.name,
  };
}

/** The controller owner reference every child carries (garbage collection follows it). */
export function ownerReferenceOf(object: TicketEventObject): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: object.metadata.name,
    uid: object.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function metadataOf(object: TicketEventObject, name: string): ChildObject['metadata'] {
  return {
    name,
    namespace: object.metadata.namespace,
    labels: labelsOf(object),
    annotations: { [EVENT_ID_ANNOTATION]: eventIdOf(object.metadata) },
    ownerReferences: [ownerReferenceOf(object)],
  };
}

/** Settings every engine of the event reads, as environment variables. */
export function engineSettings(object: TicketEventObject, defaults: EngineDefaults): Record<string, string> {
  return {
    SENTINEL_EVENT: eventIdOf(object.metadata),
    SENTINEL_HTTP_PORT: String(defaults.metricsPort),
    LOG_LEVEL: object.spec.engine?.logLevel ?? 'info',
  };
}

/** Short, stable digest of a settings map; a change rolls the engine pods. */
export function configHash(data: Readonly<Record<string, string>>): string {
  const canonical = JSON.stringify(
    Object.keys(data)
      .sort()
      .map((k) => [k, data[k]]),
  );
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

function resourcesOf(object: TicketEventObject, defaults: EngineDefaults): Record<string, unknown> {
  const wanted = object.spec.engine?.resources;
  if (wanted === undefined || (wanted.requests === undefined && wanted.limits === undefined)) {
    return { requests: { ...defaults.resources.requests }, limits: { ...defaults.resources.limits } };
  }
  const quantities = (list: Record<string, string | number> | undefined): Record<string, string> =>
    Object.fromEntries(Object.entries(list ?? {}).map(([k, v]) => [k, String(v)]));
  return {
    ...(wanted.requests === undefined ? {} : { requests: quantities(wanted.requests as Record<string, string | number>) }),
    ...(wanted.limits === undefined ? {} : { limits: quantities(wanted.limits as Record<string, string | number>) }),
  };
}

/** The event's ConfigMap: the settings of its engines. */
export function engineConfigMap(object: TicketEventObject, defaults: EngineDefaults): ChildObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadataOf(object, childNames(object.metadata.name).config),
    data: engineSettings(object, defaults),
  };
}

/** The event's engine Deployment: `spec.engine.replicas` engines serving SENTINEL_EVENT. */
export function engineDeployment(object: TicketEventObject, defaults: EngineDefaults): ChildObject {
  const names = childNames(object.metadata.name);
  const engine = object.spec.engine;
  const selector = engineSelector(object.metadata.name);
  const port = defaults.metricsPort;
  const probe = (path: string, extra: Record<string, number>): Record<string, unknown> => ({
    httpGet: { path, port: 'metrics', scheme: 'HTTP' },
    ...extra,
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadataOf(object, names.engine),
    spec: {
      replicas: engine?.replicas ?? DEFAULT_ENGINE_REPLICAS,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selector },
      // One new engine at a time, none removed before its replacement is ready: shards hand off gracefully.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: {
          labels: labelsOf(object),
          annotations: {
            [CONFIG_HASH_ANNOTATION]: configHash(engineSettings(object, defaults)),
            [EVENT_ID_ANNOTATION]: eventIdOf(object.metadata),
            ...(defaults.settingsHash === undefined ? {} : { [SETTINGS_HASH_ANNOTATION]: defaults.settingsHash }),
          },
        },
        spec: {
          serviceAccountName: defaults.serviceAccountName,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 30,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            fsGroup: 65532,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } } },
              ],
            },
          },
          containers: [
            {
              name: 'engine',
              image: engine?.image ?? defaults.image,
              imagePullPolicy: defaults.imagePullPolicy,
              args: ['engine'],
              env: [
                { name: 'SENTINEL_EVENT', value: eventIdOf(object.metadata) },
                { name: 'SENTINEL_ENGINE_ID', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
              ],
              // Later sources win: shared settings, then credentials, then this event's own settings.
              envFrom: [
                {
                  configMapRef: {
                    name: engine?.configMapRef?.name ?? defaults.configMapName,
                    optional: engine?.configMapRef === undefined,
                  },
                },
                { secretRef: { name: engine?.secretRef?.name ?? defaults.secretName, optional: engine?.secretRef === undefined } },
                { configMapRef: { name: names.config } },
              ],
              ports: [{ name: 'metrics', containerPort: port, protocol: 'TCP' }],
              startupProbe: probe('/healthz', { periodSeconds: 2, failureThreshold: 30 }),
              livenessProbe: probe('/healthz', { periodSeconds: 10, failureThreshold: 3 }),
              readinessProbe: probe('/readyz', { periodSeconds: 5, failureThreshold: 2 }),
              resources: resourcesOf(object, defaults),
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
        },
      },
    },
  };
}

/** The Service that exposes the engines' metrics to Prometheus. */
export function engineMetricsService(object: TicketEventObject, defaults: EngineDefaults): ChildObject {
  const meta = metadataOf(object, childNames(object.metadata.name).metrics);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      ...meta,
      annotations: {
        ...(meta['annotations'] as Record<string, string>),
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(defaults.metricsPort),
      },
    },
    spec: {
      type: 'ClusterIP',
      selector: engineSelector(object.metadata.name),
      ports: [{ name: 'metrics', port: defaults.metricsPort, targetPort: 'metrics', protocol: 'TCP' }],
    },
  };
}

/** At most one engine of the event is evicted at a time (node drains), so shards move one by one. */
export function engineDisruptionBudget(object: TicketEventObject): ChildObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadataOf(object, childNames(object.metadata.name).budget),
    spec: { maxUnavailable: 1, selector: { matchLabels: engineSelector(object.metadata.name) } },
  };
}

/** Every child of a TicketEvent, in the order they are applied (config before the pods that read it). */
export function desiredChildren(object: TicketEventObject, defaults: EngineDefaults): ChildObject[] {
  return [
    engineConfigMap(object, defaults),
    engineDeployment(object, defaults),
    engineMetricsService(object, defaults),
    engineDisruptionBudget(object),
  ];
}

/**
 * Fields of the engine Deployment that come from the TicketEvent's spec, so that a refusal by the
 * API server (which names the Deployment's fields) can name the field a person has to fix.
 */
const SPEC_FIELDS_OF_CHILD: readonly (readonly [RegExp, string])[] = [
  [/spec\.template\.spec\.containers\[0\]\.resources/, 'spec.engine.resources'],
  [/spec\.template\.spec\.containers\[0\]\.image\b/, 'spec.engine.image'],
  [/spec\.template\.spec\.containers\[0\]\.envFrom\[0\]/, 'spec.engine.configMapRef'],
  [/spec\.template\.spec\.containers\[0\]\.envFrom\[1\]/, 'spec.engine.secretRef'],
  [/spec\.replicas\b/, 'spec.engine.replicas'],
];

/** The TicketEvent fields behind the child fields an API server message names, e.g. `spec.engine.resources`. Pure. */
export function specFieldsIn(message: string): string[] {
  return SPEC_FIELDS_OF_CHILD.filter(([pattern]) => pattern.test(message)).map(([, field]) => field);
}
