/**
 * Status as small transactions (the CloudNativePG way): the reconciler decides a `StatusPatch`, and
 * `applyStatusPatch` folds it onto a fresh copy of the object's latest status. The writer compares
 * before and after and calls the API server only when something changed, so a level-based
 * reconcile that finds nothing new writes nothing.
 */
import type { Condition, EngineSpec, SeatCounts, ShardCounts, TicketEventPhase, TicketEventStatus } from './api/v1alpha1.js';

/** The condition types a TicketEvent reports. */
export const ConditionType = {
  /**
   * Everything the spec asks for is in place: inventory provisioned, an engine pod known to be
   * available before the sale opens (when a controller reports on the Deployment; see
   * ShardsAvailable), every shard owned while the sale is open (engines claim shards only then),
   * nothing degraded.
   */
  Ready: 'Ready',
  /** The inventory of the current generation exists in Postgres. */
  InventoryProvisioned: 'InventoryProvisioned',
  /**
   * Every shard is owned by a live engine (`AllShardsOwned`; False: `ShardsUnowned`, or
   * `NoEngines` for `replicas: 0`). Before the sale opens, when none is expected to be owned:
   * Unknown (`SaleNotOpen`) if the engine Deployment has a pod available or no controller reports
   * on it; False (`NoEngineAvailable`) while it is missing, not reported on in its first 10 s, or
   * reported with no pod available; Unknown (`EngineAvailabilityUnknown`) when it cannot be read.
   * Only `SaleNotOpen` leaves a pending event Ready. While the TicketEvent is deleted: False
   * (`SaleClosing`), with how many shards the engines still hold.
   */
  ShardsAvailable: 'ShardsAvailable',
  /**
   * Something needs a person: a refused change, shards without an engine during the sale, repeated
   * errors, a deletion kept past its drain window by unpublished reservations (`OutboxNotDrained`).
   * False with reason `Draining` while a deletion drains within its window.
   */
  Degraded: 'Degraded',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** A condition as the reconciler decides it; times and generations are filled in when applied. */
export interface ConditionUpdate {
  readonly type: ConditionType;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

/** What a reconcile wants the status to say. Absent fields are left as they are. */
export interface StatusPatch {
  readonly phase?: TicketEventPhase;
  readonly eventId?: string;
  /** Set when the patch describes the object's current generation. */
  readonly observedGeneration?: number;
  readonly seats?: SeatCounts;
  readonly shards?: ShardCounts;
  /** When deletion closed the sale (RFC 3339); see TicketEventStatus.drainingSince. */
  readonly drainingSince?: string;
  /** The `spec.engine` the children were applied from; see TicketEventStatus.appliedEngine. */
  readonly appliedEngine?: EngineSpec;
  readonly conditions?: readonly ConditionUpdate[];
}

/** The order conditions are listed in, so status diffs stay readable. */
const CONDITION_ORDER: readonly string[] = [
  ConditionType.Ready,
  ConditionType.InventoryProvisioned,
  ConditionType.ShardsAvailable,
  ConditionType.Degraded,
];

/**
 * Sets one condition on a list, keeping `lastTransitionTime` when the status did not change
 * (a new reason or message alone is not a transition). Returns a new list.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
  generation: number,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === update.type);
  const previous = index === -1 ? undefined : list[index];
  const next: Condition = {
    type: update.type,
    status: update.status,
    observedGeneration: generation,
    lastTransitionTime: previous !== undefined && previous.status === update.status ? previous.lastTransitionTime : rfc3339(now),
    reason: update.reason,
    message: truncate(update.message, 32_768),
  };
  if (index === -1) list.push(next);
  else list[index] = next;
  return list.sort((a, b) => rankOf(a.type) - rankOf(b.type));
}

/** The condition of a type, if set. */
export function findCondition(status: TicketEventStatus | undefined, type: ConditionType): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** Folds a patch onto a copy of `status` (never mutates it). Pure. */
export function applyStatusPatch(
  status: TicketEventStatus | undefined,
  patch: StatusPatch,
  now: Date,
  generation: number,
): TicketEventStatus {
  const next: TicketEventStatus = structuredClone(status ?? {});
  if (patch.phase !== undefined) next.phase = patch.phase;
  if (patch.eventId !== undefined) next.eventId = patch.eventId;
  if (patch.observedGeneration !== undefined) next.observedGeneration = patch.observedGeneration;
  if (patch.seats !== undefined) next.seats = { ...patch.seats };
  if (patch.shards !== undefined) next.shards = { ...patch.shards };
  if (patch.drainingSince !== undefined) next.drainingSince = patch.drainingSince;
  if (patch.appliedEngine !== undefined) next.appliedEngine = structuredClone(patch.appliedEngine);
  for (const update of patch.conditions ?? []) next.conditions = setCondition(next.conditions, update, now, generation);
  if (next.seats !== undefined || next.shards !== undefined) {
    next.summary = {
      ...(next.seats === undefined ? {} : { sold: `${next.seats.sold}/${next.seats.total}` }),
      ...(next.shards === undefined ? {} : { shards: `${next.shards.ready}/${next.shards.desired}` }),
    };
  }
  return next;
}

/** Whether two statuses say the same thing (key order does not matter). */
export function sameStatus(a: TicketEventStatus | undefined, b: TicketEventStatus | undefined): boolean {
  return canonical(a ?? {}) === canonical(b ?? {});
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : v,
  );
}

function rankOf(type: string): number {
  const i = CONDITION_ORDER.indexOf(type);
  return i === -1 ? CONDITION_ORDER.length : i;
}

/** RFC 3339 with second precision, the form Kubernetes stores (metav1.Time). */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
