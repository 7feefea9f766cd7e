/**
 * The `TicketEvent` custom resource, `sentinel.dev/v1alpha1`: the single source of its CRD.
 *
 * `src/cli/generate.ts` reads this file (TypeScript syntax only, no type checker) and turns every
 * interface reachable from `TicketEvent` into the CRD's structural OpenAPI schema. Doc comments
 * become descriptions; JSDoc tags become schema keywords, the way kubebuilder markers do:
 *
 * | tag | schema |
 * |---|---|
 * | `@minimum n` `@maximum n` `@minLength n` `@maxLength n` `@minItems n` `@maxItems n` | the same keyword |
 * | `@pattern re` `@format f` `@enum` (from a string-literal union) | the same keyword |
 * | `@default json` | `default` (a property with a default is never `required`) |
 * | `@validation {"rule": "...", "message": "..."}` | one entry of `x-kubernetes-validations` (CEL) |
 * | `@listType map` `@listMapKeys a,b` | `x-kubernetes-list-type` / `-list-map-keys` |
 * | `@schemaType t` (on a type alias) | the alias's JSON type (`integer`, `object`, `int-or-string`) |
 *
 * Optional (`?`) properties are optional in the schema; status properties are all optional because
 * the operator fills them in over time. Edit this file, then run `npm run generate`.
 */

/** API group of Sentinel's custom resources. */
export const GROUP = 'sentinel.dev';
/** The served and stored version. */
export const VERSION = 'v1alpha1';
/** `apiVersion` of a TicketEvent. */
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'TicketEvent';
export const PLURAL = 'ticketevents';
export const SINGULAR = 'ticketevent';
export const SHORT_NAMES: readonly string[] = ['te', 'tev'];
export const CATEGORIES: readonly string[] = ['sentinel'];

/**
 * A 32-bit integer.
 * @schemaType integer
 * @format int32
 */
export type Int32 = number;

/**
 * A 64-bit integer.
 * @schemaType integer
 * @format int64
 */
export type Int64 = number;

/**
 * An RFC 3339 date-time, e.g. `2030-05-01T18:00:00Z`.
 * @format date-time
 */
export type DateTime = string;

/**
 * A Kubernetes resource quantity, e.g. `500m`, `2`, `512Mi`.
 * @schemaType int-or-string
 * @pattern ^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$
 */
export type Quantity = string | number;

// Standard object metadata: validated by the API server itself, so the schema says only `type: object`
// (structural schemas may not describe metadata beyond name and generateName).
/** @schemaType object */
export type ObjectMeta = {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: unknown[];
};

/**
 * A flash sale of one event: its seats and general-admission places, when they are sold, and the
 * engine pods that sell them. The operator provisions the inventory in Postgres, runs the event's
 * engine Deployment, and reports progress in `status`.
 * @validation {"rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')", "message": "metadata.name must be a DNS label (lowercase letters, digits and '-', starting with a letter): it becomes part of the event id, NATS subjects and child object names"}
 * @validation {"rule": "size(self.metadata.name) <= 40", "message": "metadata.name must be at most 40 characters: child objects append suffixes such as '-engine-metrics'"}
 * @validation {"rule": "!self.metadata.name.contains('--')", "message": "metadata.name must not contain '--': the event id is <namespace>--<name>"}
 */
export interface TicketEvent {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: TicketEventSpec;
  status?: TicketEventStatus;
}

/**
 * What to sell and how. A provisioned event takes changes to its display name, sale window (either
 * end, earlier or later), hold TTL, customer limit and admission rate (higher or lower), and engine;
 * a change to its layout or shard count is refused with a condition, and nothing of that edit is
 * applied.
 * @validation {"rule": "self.shardCount <= self.layout.sections.map(s, size(s.rows)).sum() + size(self.layout.pools)", "message": "shardCount must not exceed the number of rows plus pools in the layout: a row or pool is never split across shards, so extra shards would own nothing", "fieldPath": ".shardCount", "reason": "FieldValueInvalid"}
 */
export interface TicketEventSpec {
  /**
   * Name of the event shown to buyers.
   * @minLength 1
   * @maxLength 200
   */
  displayName: string;
  /** When the sale opens and closes. */
  sale: SaleWindow;
  /** What is sold: sections of numbered seats in rows, and general-admission pools. */
  layout: EventLayout;
  /**
   * Number of inventory shards (actors), each owned by one engine at a time. More shards spread a
   * hot sale over more engines. Fixed once the sale is provisioned.
   * @minimum 1
   * @maximum 256
   * @default 1
   */
  shardCount: Int32;
  /**
   * How long a hold keeps its seats before they return to sale, in seconds.
   * @minimum 30
   * @maximum 3600
   * @default 600
   */
  holdTtlSeconds: Int32;
  /**
   * Most seats or places one customer may hold or buy in this event.
   * @minimum 1
   * @maximum 100
   * @default 6
   */
  customerLimit: Int32;
  /**
   * Requests per second admitted for this event across all ingress replicas; the rest get 429.
   * @minimum 1
   * @maximum 1000000
   * @default 1000
   */
  admissionRate: Int32;
  /**
   * The engine pods that host this event's shards.
   * @default {}
   */
  engine: EngineSpec;
}

/**
 * The sale window. Buyers can hold and buy from `opensAt` until `closesAt`.
 * @validation {"rule": "self.closesAt > self.opensAt", "message": "sale.closesAt must be after sale.opensAt", "fieldPath": ".closesAt", "reason": "FieldValueInvalid"}
 */
export interface SaleWindow {
  /** When the sale opens (RFC 3339). */
  opensAt: DateTime;
  /** When the sale closes (RFC 3339); may be moved earlier or later, also while on sale. */
  closesAt: DateTime;
}

/**
 * The event's seating: sections (best first) and general-admission pools. Section and pool ids
 * share one namespace because both appear in seat ids and URLs.
 * @validation {"rule": "size(self.sections) + size(self.pools) > 0", "message": "layout must have at least one section or pool: there is nothing to sell"}
 * @validation {"rule": "self.sections.all(s, self.pools.all(p, p.id != s.id))", "message": "a pool must not have the same id as a section: both appear in seat ids and URLs"}
 * @validation {"rule": "self.sections.map(s, s.rows.map(r, r.seats).sum()).sum() <= 1000000", "message": "at most 1000000 seats in one event"}
 */
export interface EventLayout {
  /**
   * Sections of numbered seats, best first.
   * @maxItems 200
   * @listType map
   * @listMapKeys id
   * @default []
   */
  sections: Section[];
  /**
   * General-admission pools of interchangeable places.
   * @maxItems 64
   * @listType map
   * @listMapKeys id
   * @default []
   */
  pools: Pool[];
}

/** A section of assigned seating. */
export interface Section {
  /**
   * Short id used in seat ids (`<section>-<row>-<number>`, e.g. `A-12-7`): letters and digits only.
   * @minLength 1
   * @maxLength 16
   * @pattern ^[A-Za-z0-9]+$
   */
  id: string;
  /**
   * Display name.
   * @maxLength 200
   */
  name?: string;
  /**
   * Price tier of every seat in the section (e.g. `premium`).
   * @maxLength 200
   */
  priceTier?: string;
  /**
   * Rows of the section, best first.
   * @minItems 1
   * @maxItems 500
   * @listType map
   * @listMapKeys id
   */
  rows: Row[];
}

/** A row of seats numbered 1..seats. */
export interface Row {
  /**
   * Row id, unique within its section: letters and digits only.
   * @minLength 1
   * @maxLength 16
   * @pattern ^[A-Za-z0-9]+$
   */
  id: string;
  /**
   * Number of seats in the row.
   * @minimum 1
   * @maximum 10000
   */
  seats: Int32;
}

/** A general-admission pool. */
export interface Pool {
  /**
   * Short id, unique among sections and pools: letters and digits only.
   * @minLength 1
   * @maxLength 16
   * @pattern ^[A-Za-z0-9]+$
   */
  id: string;
  /**
   * Display name.
   * @maxLength 200
   */
  name?: string;
  /**
   * Number of places.
   * @minimum 1
   * @maximum 10000000
   */
  capacity: Int32;
}

/** The event's engine Deployment. */
export interface EngineSpec {
  /**
   * Number of engine pods. Shards are balanced across them; more replicas than shards leaves some idle.
   * @minimum 0
   * @maximum 64
   * @default 2
   */
  replicas: Int32;
  /**
   * Container image of the engine; defaults to the operator's engine image.
   * @maxLength 512
   */
  image?: string;
  /** CPU and memory of each engine pod; defaults to the operator's engine resources. */
  resources?: ResourceRequirements;
  /**
   * ConfigMap in this namespace with shared engine settings (REDIS_URL, NATS_URL, KAFKA_BROKERS, ...),
   * loaded as environment variables; defaults to the operator's engine ConfigMap.
   */
  configMapRef?: LocalObjectReference;
  /**
   * Secret in this namespace with engine credentials (DATABASE_URL, ...), loaded as environment
   * variables; defaults to the operator's engine Secret.
   */
  secretRef?: LocalObjectReference;
  /**
   * Log level of the engine pods.
   * @default "info"
   */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

/**
 * Compute resources of a container. A request above its limit would make the API server refuse the
 * engine Deployment, so it is refused here, at admission, with the TicketEvent's own field names.
 * @validation {"rule": "!has(self.requests) || !has(self.requests.cpu) || !has(self.limits) || !has(self.limits.cpu) || quantity(string(self.requests.cpu)).compareTo(quantity(string(self.limits.cpu))) <= 0", "message": "resources.requests.cpu must be less than or equal to resources.limits.cpu", "fieldPath": ".requests.cpu", "reason": "FieldValueInvalid"}
 * @validation {"rule": "!has(self.requests) || !has(self.requests.memory) || !has(self.limits) || !has(self.limits.memory) || quantity(string(self.requests.memory)).compareTo(quantity(string(self.limits.memory))) <= 0", "message": "resources.requests.memory must be less than or equal to resources.limits.memory", "fieldPath": ".requests.memory", "reason": "FieldValueInvalid"}
 */
export interface ResourceRequirements {
  /** Guaranteed resources. */
  requests?: ResourceList;
  /** Hard limits. */
  limits?: ResourceList;
}

/** CPU and memory quantities. */
export interface ResourceList {
  /** CPU, e.g. `500m`. */
  cpu?: Quantity;
  /** Memory, e.g. `512Mi`. */
  memory?: Quantity;
}

/** A reference to an object in the same namespace. */
export interface LocalObjectReference {
  /**
   * Name of the object.
   * @minLength 1
   * @maxLength 253
   */
  name: string;
}

/** Where a TicketEvent's sale stands. */
export type TicketEventPhase = 'Pending' | 'Provisioning' | 'OnSale' | 'SoldOut' | 'Closed' | 'Failed';

/** Observed state, written by the operator through the status subresource. */
export interface TicketEventStatus {
  /**
   * Pending (provisioned, sale not yet open), Provisioning, OnSale, SoldOut, Closed (window over or
   * being deleted) or Failed (the spec cannot be provisioned).
   */
  phase?: TicketEventPhase;
  /** The `metadata.generation` this status describes. */
  observedGeneration?: Int64;
  /** The event id in the inventory, NATS subjects and the REST API: `<namespace>--<name>`. */
  eventId?: string;
  /**
   * Ready, InventoryProvisioned, ShardsAvailable and Degraded.
   * @listType map
   * @listMapKeys type
   * @maxItems 16
   */
  conditions?: Condition[];
  /** Seat and place counts from the committed inventory. */
  seats?: SeatCounts;
  /** Shards owned by a live engine, out of the shard count. */
  shards?: ShardCounts;
  /** Short forms shown by `kubectl get`. */
  summary?: StatusSummary;
  /**
   * Set while the TicketEvent is being deleted: when the operator closed the sale (RFC 3339). The
   * drain timeout counts from here, so engines always get a full drain window after the close.
   */
  drainingSince?: DateTime;
  /**
   * The `spec.engine` the children were last applied from (an accepted generation). While a later
   * change is refused nothing of it is applied, and a child deleted meanwhile is recreated from this.
   */
  appliedEngine?: EngineSpec;
}

/** Seat and general-admission place counts. */
export interface SeatCounts {
  /** Everything on sale: seats plus pool places. */
  total: Int64;
  available: Int64;
  held: Int64;
  sold: Int64;
}

/** Shard readiness. */
export interface ShardCounts {
  /** The shard count of the provisioned inventory. */
  desired: Int32;
  /** Shards currently owned by an engine. */
  ready: Int32;
}

/** Human-readable columns for `kubectl get ticketevents`. */
export interface StatusSummary {
  /** Sold of total, e.g. `120/4000`. */
  sold?: string;
  /** Ready of desired shards, e.g. `4/4`. */
  shards?: string;
}

/** A standard Kubernetes condition (the shape of metav1.Condition). */
export interface Condition {
  /**
   * Type of the condition, e.g. `Ready`.
   * @maxLength 316
   * @pattern ^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*[/])?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$
   */
  type: string;
  /** True, False or Unknown. */
  status: 'True' | 'False' | 'Unknown';
  /** The `metadata.generation` the condition was set for. */
  observedGeneration?: Int64;
  /** When the status last changed. */
  lastTransitionTime: DateTime;
  /**
   * Machine-readable CamelCase reason of the last transition.
   * @minLength 1
   * @maxLength 1024
   * @pattern ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$
   */
  reason: string;
  /**
   * Human-readable details.
   * @maxLength 32768
   */
  message: string;
}
