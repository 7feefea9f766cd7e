/**
 * The reconciler's decision, as a pure function of what it observed: `plan(object, observed)`
 * returns the children to apply, the inventory steps to take, the status to report, the events to
 * record and when to look again. No I/O happens here, so every rule of the operator is unit-tested
 * without an API server or a database.
 */
import type { EngineSpec, TicketEventPhase, TicketEventStatus } from './api/v1alpha1.js';
import type { ProvisionOutcome } from '../engine/provision.js';
import { childNames, DEFAULT_ENGINE_REPLICAS, desiredChildren, specFieldsIn, type ChildObject, type EngineDefaults } from './children.js';
import { ConditionType, findCondition, rfc3339, type ConditionUpdate, type StatusPatch } from './conditions.js';
import { eventIdOf } from './event-id.js';
import type { EventInventory } from './inventory-port.js';
import type { EngineAvailability } from './kube-gateway.js';
import { FINALIZER, type TicketEventObject } from './types.js';

/** One step the reconciler carries out. */
export type Action =
  /** Server-side apply of a child object. */
  | { readonly type: 'apply'; readonly object: ChildObject }
  /** Stop the sale: engines drop the event's shards; holds and reservations stay. */
  | { readonly type: 'close-sale' }
  /** Mark reservations archived (never deleted). */
  | { readonly type: 'archive' }
  /** Let the API server delete the object. Nothing may follow it. */
  | { readonly type: 'remove-finalizer' };

/** A Kubernetes Event to record on the TicketEvent. */
export interface RecordedEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

/**
 * A child refused in the dry run that precedes every change: by the API server, or because an
 * object of its name exists that is not the TicketEvent's (the operator would take it over, and
 * garbage collection would delete it with the TicketEvent).
 */
export interface RejectedChild {
  readonly kind: string;
  readonly name: string;
  /** The API server's explanation (it names the child's field), or whose the namesake is. */
  readonly message: string;
  /** The namesake exists and is not this TicketEvent's (`ChildNotOwned`); else the API server refused the child (`ChildRejected`). */
  readonly notOwned?: boolean;
}

/** The reasons of InventoryProvisioned=False for a refused child: until it changes, each reconcile looks again. */
export const CHILD_REFUSALS: readonly string[] = ['ChildRejected', 'ChildNotOwned'];

/** Everything `plan` looks at besides the object. */
export interface Observed {
  readonly now: Date;
  /**
   * What provisioning the current spec did (the inventory call is idempotent and makes no change
   * when nothing changed). Absent while the object is being deleted, and when a child was rejected.
   */
  readonly provision?: ProvisionOutcome;
  /**
   * A child of the current spec the API server refuses (server-side apply with dryRun=All, before
   * provisioning): then nothing of this generation was written anywhere, the inventory included.
   */
  readonly rejected?: RejectedChild;
  /**
   * The committed inventory, shard ownership and sale window in force (the accepted one, which the
   * phase and the wake-ups follow); undefined when the event was never provisioned.
   */
  readonly inventory: EventInventory | undefined;
  /**
   * The event's outbox rows not yet published to Kafka (any topic); read while deleting, because
   * the engines that relay them go once the finalizer is removed. Absent counts as 0.
   */
  readonly unpublished?: number;
  /** The engine Deployment's availability (read from before the opening to the close), or why it could not be read. */
  readonly engines?: EngineAvailability | { readonly unknown: string };
}

/** Settings of the plan that are not in the TicketEvent. */
export interface PlanSettings {
  readonly engine: EngineDefaults;
  /** How often counts are refreshed while a sale is pending or open. */
  readonly refreshIntervalMs: number;
  /**
   * How long deletion waits, from the close of the sale, for engines to release their shards before
   * archiving anyway (never while the event's outbox still has unpublished rows).
   */
  readonly drainTimeoutMs: number;
  /** How often deletion looks at shard ownership while it waits. */
  readonly drainPollMs: number;
}

/** The reconciler's decision. */
export interface Plan {
  readonly actions: readonly Action[];
  /** Status to fold onto the latest status; undefined when the status must not be written (object going away). */
  readonly status: StatusPatch | undefined;
  readonly events: readonly RecordedEvent[];
  /** Look again after this long even if nothing changes; undefined = only on change or resync. */
  readonly requeueAfterMs: number | undefined;
}

const REFUSAL_REASONS = {
  invalid: 'InvalidSpec',
  'layout-changed': 'UnsafeChangeRefused',
  'shard-count-changed': 'UnsafeChangeRefused',
  archived: 'EventArchived',
  closed: 'EventClosed',
} as const;

/** Refusals of an event whose sale is over for good: nothing keeps selling. */
const OVER: ReadonlySet<string> = new Set([REFUSAL_REASONS.archived, REFUSAL_REASONS.closed]);

/** Why nothing of the current generation is applied, and whether the object can only be Failed. */
interface Refusal {
  readonly reason: string;
  readonly message: string;
  readonly terminal: boolean;
}

function refusalOf(observed: Observed): Refusal | undefined {
  const { rejected, inventory } = observed;
  if (rejected?.notOwned === true) {
    return {
      reason: 'ChildNotOwned',
      message:
        `the ${rejected.kind} ${rejected.name} this TicketEvent needs exists and is not its own (${rejected.message}); nothing was applied: ` +
        `delete or rename that ${rejected.kind}, or give the TicketEvent another name`,
      terminal: inventory === undefined,
    };
  }
  if (rejected !== undefined) {
    const fields = specFieldsIn(rejected.message);
    return {
      reason: 'ChildRejected',
      message: `${fields.length === 0 ? 'spec' : fields.join(', ')}: the API server refuses the ${rejected.kind} ${rejected.name} this spec asks for: ${rejected.message}`,
      // A provisioned event keeps selling on what it has; its phase follows the sale.
      terminal: inventory === undefined,
    };
  }
  const outcome = observed.provision;
  if (outcome?.status !== 'refused') return undefined;
  return {
    reason: REFUSAL_REASONS[outcome.reason],
    message: outcome.message,
    // An invalid edit of a provisioned event is refused like an unsafe one: the sale goes on with
    // what it has (until 2026-12-05 it turned the event Failed, with no refresh requeued).
    terminal: OVER.has(REFUSAL_REASONS[outcome.reason]) || inventory === undefined,
  };
}

/** Decides one reconcile of a TicketEvent. Pure. */
export function plan(object: TicketEventObject, observed: Observed, settings: PlanSettings): Plan {
  if (object.metadata.deletionTimestamp !== undefined) return planDeletion(object, observed, settings);
  return planSale(object, observed, settings);
}

/**
 * Phase from the inventory: its counts and its sale window — the one in force, which engines and
 * the ingress sell by, not the spec's (a refused edit may have moved that one). Pure.
 */
export function phaseOf(inventory: EventInventory | undefined, now: Date): TicketEventPhase {
  if (inventory === undefined) return 'Provisioning';
  const opens = inventory.sale.opensAt.getTime();
  const closes = inventory.sale.closesAt.getTime();
  const t = now.getTime();
  if (t < opens) return 'Pending';
  if (t >= closes) return 'Closed';
  if (inventory.total > 0 && inventory.sold >= inventory.total) return 'SoldOut';
  return 'OnSale';
}

function planSale(object: TicketEventObject, observed: Observed, settings: PlanSettings): Plan {
  const { now, inventory } = observed;
  const outcome = observed.provision ?? { status: 'unchanged' };
  const generation = object.metadata.generation;
  const eventId = eventIdOf(object.metadata);
  const before = object.status;
  const events: RecordedEvent[] = [];
  const actions: Action[] = [];
  const conditions: ConditionUpdate[] = [];

  let phase: TicketEventPhase;
  let provisioned: ConditionUpdate;
  let degraded: ConditionUpdate | undefined;
  let appliedEngine: EngineSpec | undefined;
  const refusal = refusalOf(observed);
  if (refusal !== undefined) {
    const { reason } = refusal;
    const kept =
      inventory === undefined
        ? ''
        : OVER.has(reason)
          ? ' Its sale is over and is never reopened; a TicketEvent of another name (or namespace) is a new event.'
          : ' The event keeps selling with its provisioned inventory; nothing of this change was applied.';
    provisioned = {
      type: ConditionType.InventoryProvisioned,
      status: 'False',
      reason,
      message: `${refusal.message.replace(/\.$/, '')}.${kept}`,
    };
    degraded = { type: ConditionType.Degraded, status: 'True', reason, message: provisioned.message };
    phase = refusal.terminal ? 'Failed' : phaseOf(inventory, now);
    if (findCondition(before, ConditionType.InventoryProvisioned)?.reason !== reason || before?.observedGeneration !== generation) {
      events.push({ type: 'Warning', reason, message: provisioned.message });
    }
    // The children stay as the last accepted spec made them: re-applied from it, so one deleted
    // (or edited) by hand meanwhile comes back, and nothing of the refused change reaches them —
    // unless one of them is now someone else's object, which an apply would take over.
    const accepted = before?.appliedEngine;
    if (accepted !== undefined && inventory !== undefined && observed.rejected?.notOwned !== true) {
      const asAccepted: TicketEventObject = { ...object, spec: { ...object.spec, engine: accepted } };
      for (const child of desiredChildren(asAccepted, settings.engine)) actions.push({ type: 'apply', object: child });
    }
  } else {
    // Nothing of a refused spec is applied; an accepted one rolls out to every child.
    for (const child of desiredChildren(object, settings.engine)) actions.push({ type: 'apply', object: child });
    appliedEngine = object.spec.engine;
    phase = phaseOf(inventory, now);
    const counts = inventory === undefined ? '' : `${inventory.total} seats and places in ${inventory.shards.desired} shards`;
    provisioned =
      inventory === undefined
        ? { type: ConditionType.InventoryProvisioned, status: 'Unknown', reason: 'Provisioning', message: 'inventory is being provisioned' }
        : {
            type: ConditionType.InventoryProvisioned,
            status: 'True',
            reason: 'Provisioned',
            message: `inventory of event ${eventId}: ${counts}`,
          };
    if (outcome.status === 'created') {
      events.push({
        type: 'Normal',
        reason: 'Provisioned',
        message: `Provisioned event ${eventId}: ${outcome.seats} seats, ${outcome.pools} pools, ${outcome.shards} shards`,
      });
    } else if (outcome.status === 'updated') {
      events.push({ type: 'Normal', reason: 'Updated', message: `Applied changes to event ${eventId}: ${outcome.changed.join(', ')}` });
    }
  }
  conditions.push(provisioned);

  let shardsAvailable: ConditionUpdate;
  if (inventory === undefined) {
    shardsAvailable = { type: ConditionType.ShardsAvailable, status: 'Unknown', reason: 'NotProvisioned', message: 'no inventory yet' };
  } else {
    const { desired, owned } = inventory.shards;
    const replicas = object.spec.engine?.replicas ?? DEFAULT_ENGINE_REPLICAS;
    const engines =
      phase === 'Pending' && replicas > 0 ? enginesBeforeOpening(object, observed.engines, inventory.sale.opensAt, now) : undefined;
    if (engines !== undefined) {
      shardsAvailable = engines;
    } else if (phase === 'Pending' && replicas > 0) {
      // Engines claim the shards of events on sale only: before the window opens, none owned is expected.
      shardsAvailable = {
        type: ConditionType.ShardsAvailable,
        status: 'Unknown',
        reason: 'SaleNotOpen',
        message: `engines claim the shards when the sale opens at ${rfc3339(inventory.sale.opensAt)}; ${owned}/${desired} owned now`,
      };
    } else if (owned >= desired && desired > 0) {
      shardsAvailable = {
        type: ConditionType.ShardsAvailable,
        status: 'True',
        reason: 'AllShardsOwned',
        message: `${owned}/${desired} shards owned by engines`,
      };
    } else if (replicas === 0) {
      shardsAvailable = {
        type: ConditionType.ShardsAvailable,
        status: 'False',
        reason: 'NoEngines',
        message: `spec.engine.replicas is 0: ${owned}/${desired} shards owned`,
      };
    } else {
      shardsAvailable = {
        type: ConditionType.ShardsAvailable,
        status: 'False',
        reason: 'ShardsUnowned',
        message: `${owned}/${desired} shards owned by engines; waiting for ${desired - owned} more`,
      };
    }
    if (degraded === undefined && phase === 'OnSale' && owned < desired) {
      degraded = {
        type: ConditionType.Degraded,
        status: 'True',
        reason: 'ShardsUnavailable',
        message: `${desired - owned} of ${desired} shards have no engine during the sale: their seats cannot be sold until one claims them`,
      };
    }
    const stalled = phase === 'Closed' ? undefined : rolloutStalled(object, observed.engines, before);
    if (degraded === undefined && stalled !== undefined) {
      degraded = stalled;
      if (findCondition(before, ConditionType.Degraded)?.reason !== stalled.reason)
        events.push({ type: 'Warning', reason: stalled.reason, message: stalled.message });
    }
  }
  conditions.push(shardsAvailable);
  degraded ??= { type: ConditionType.Degraded, status: 'False', reason: 'AsExpected', message: 'nothing needs attention' };
  conditions.push(degraded);

  // Engines own shards only while the sale is open: before it opens they have not claimed them yet,
  // once it is over they may let them go — neither is a reason to be unready. A pending sale with
  // no engines asked for (replicas 0), or no engine pod available, or whose engines could not be
  // looked at, is: nothing might serve it when it opens.
  const required =
    phase === 'Closed' || (phase === 'Pending' && shardsAvailable.reason === 'SaleNotOpen')
      ? [provisioned]
      : [provisioned, shardsAvailable];
  const blocking = required.find((c) => c.status !== 'True') ?? (degraded.status === 'True' ? degraded : undefined);
  conditions.unshift(
    blocking === undefined
      ? { type: ConditionType.Ready, status: 'True', reason: 'Ready', message: readyMessage(phase) }
      : { type: ConditionType.Ready, status: 'False', reason: blocking.reason, message: blocking.message },
  );

  if (before?.phase !== phase) {
    events.push({ type: phase === 'Failed' ? 'Warning' : 'Normal', reason: `Phase${phase}`, message: phaseMessage(phase, eventId) });
  }

  return {
    actions,
    status: {
      phase,
      eventId,
      observedGeneration: generation,
      conditions,
      ...(appliedEngine === undefined ? {} : { appliedEngine }),
      ...(inventory === undefined
        ? {}
        : {
            seats: { total: inventory.total, available: inventory.available, held: inventory.held, sold: inventory.sold },
            shards: { desired: inventory.shards.desired, ready: inventory.shards.owned },
          }),
    },
    events,
    // A namesake in the way goes away without any change to the TicketEvent: look again for that too.
    requeueAfterMs:
      observed.rejected?.notOwned === true
        ? settings.refreshIntervalMs
        : lookAgain(nextLook(inventory, phase, now, settings), observed.engines, now),
  };
}

/** `wait`, or sooner: when a young Deployment's grace for a controller report ends (without a report nothing else wakes the operator). */
function lookAgain(wait: number | undefined, engines: Observed['engines'], now: Date): number | undefined {
  const graceLeft = reportGraceLeftMs(engines, now);
  return wait !== undefined && graceLeft > 0 && graceLeft < wait ? graceLeft + 10 : wait;
}

/** How long a controller may still report on a Deployment it has not reported on (ms; 0 when it reported, or the grace is over). */
function reportGraceLeftMs(engines: Observed['engines'], now: Date): number {
  if (engines === undefined || 'unknown' in engines || !engines.found) return 0;
  if (engines.report !== undefined || engines.createdAt === undefined) return 0;
  return Math.max(0, engines.createdAt.getTime() + CONTROLLER_REPORT_GRACE_MS - now.getTime());
}

/**
 * Deletion, in three steps: close the sale and record when (`status.drainingSince`); drain (engines
 * release their shards, the outbox reaches Kafka); archive and let the object go. Only counts read
 * after the close may let it go, and the drain timeout counts from the close, so engines always
 * get a full window — even when the operator was down for longer than that.
 */
function planDeletion(object: TicketEventObject, observed: Observed, settings: PlanSettings): Plan {
  if (!(object.metadata.finalizers ?? []).includes(FINALIZER))
    return { actions: [], status: undefined, events: [], requeueAfterMs: undefined };
  const { now, inventory } = observed;
  const eventId = eventIdOf(object.metadata);
  if (inventory === undefined) {
    // Never provisioned (e.g. an invalid spec): nothing to close or keep.
    return { actions: [{ type: 'remove-finalizer' }], status: undefined, events: [], requeueAfterMs: undefined };
  }
  // Every shard that names an owner, alive or not: one paused (SIGSTOP) has not let its shard go,
  // and could still commit when it resumes — the drain waits for it (within the drain timeout).
  const { named, desired } = inventory.shards;
  // Engines end a closed sale's holds as they let its shards go (ADR 0006, item 10): seats still
  // held mean some are still at it, or will be settled by another engine — which the engines of
  // this event, deleted with it, could no longer do.
  const held = inventory.held;
  const unpublished = observed.unpublished ?? 0;
  const counts = {
    seats: { total: inventory.total, available: inventory.available, held: inventory.held, sold: inventory.sold },
    shards: { desired, ready: named },
  };
  const since = object.status?.drainingSince;
  const closedAt = since === undefined ? Number.NaN : Date.parse(since);
  if (Number.isNaN(closedAt)) {
    // The close comes first, alone: whatever was counted before it (a shard claimed, a batch
    // committing) may still change, so nothing is archived on these counts.
    const deadline = new Date(now.getTime() + settings.drainTimeoutMs);
    return {
      actions: [{ type: 'close-sale' }],
      status: {
        phase: 'Closed',
        eventId,
        ...counts,
        drainingSince: now.toISOString(),
        conditions: [
          {
            type: ConditionType.Ready,
            status: 'False',
            reason: 'Draining',
            message: drainMessage(named, desired, held, unpublished, deadline),
          },
          shardsWhileDeleting(inventory.shards),
          DEGRADED_WHILE_DRAINING,
        ],
      },
      events: [{ type: 'Normal', reason: 'Closing', message: `Closed the sale of event ${eventId}; waiting for engines to drain` }],
      requeueAfterMs: settings.drainPollMs,
    };
  }
  const deadline = new Date(closedAt + settings.drainTimeoutMs);
  const timedOut = now.getTime() >= deadline.getTime();
  if (unpublished > 0 || ((named > 0 || held > 0) && !timedOut)) {
    const conditions: ConditionUpdate[] = [
      {
        type: ConditionType.Ready,
        status: 'False',
        reason: 'Draining',
        message: drainMessage(named, desired, held, unpublished, deadline),
      },
      shardsWhileDeleting(inventory.shards),
    ];
    const events: RecordedEvent[] = [];
    if (timedOut) {
      // Only the outbox holds the finalizer now. Letting go would stop the engines (their
      // Deployment is garbage-collected) and with them the only relay of these reservations.
      const message =
        `${unpublished} reservations of event ${eventId} are still not published to Kafka ${settings.drainTimeoutMs} ms after the sale closed: ` +
        `is Kafka reachable, does an engine still run to relay them, and does the topic take them (a row Kafka refuses says why in its outbox.last_error)? The TicketEvent is kept until they are published; ` +
        `removing the finalizer ${FINALIZER} by hand lets it go anyway, and those reservations then never reach Kafka`;
      conditions.push({ type: ConditionType.Degraded, status: 'True', reason: 'OutboxNotDrained', message });
      if (findCondition(object.status, ConditionType.Degraded)?.reason !== 'OutboxNotDrained')
        events.push({ type: 'Warning', reason: 'OutboxNotDrained', message });
    } else {
      // Written at every round, like Degraded of a sale: a failure reported during the drain
      // (ReconcileError, say) is cleared by the next round that goes through.
      conditions.push(DEGRADED_WHILE_DRAINING);
    }
    return {
      actions: [{ type: 'close-sale' }],
      status: { phase: 'Closed', eventId, ...counts, conditions },
      events,
      requeueAfterMs: settings.drainPollMs,
    };
  }
  const events: RecordedEvent[] = [];
  if (named > 0 || held > 0) {
    events.push({
      type: 'Warning',
      reason: 'DrainTimedOut',
      message:
        `${named} of ${desired} shards were still owned and ${held} seats and places still held ${settings.drainTimeoutMs} ms after the sale closed; ` +
        'archiving anyway (the fencing epoch stops late writers; an engine still running settles the holds)',
    });
  }
  return {
    actions: [{ type: 'close-sale' }, { type: 'archive' }, { type: 'remove-finalizer' }],
    status: undefined,
    events,
    requeueAfterMs: undefined,
  };
}

/** Degraded while a deletion drains within its window: nothing needs a person yet. */
const DEGRADED_WHILE_DRAINING: ConditionUpdate = {
  type: ConditionType.Degraded,
  status: 'False',
  reason: 'Draining',
  message: 'the TicketEvent is being deleted: its sale is closed and the operator waits for the engines and the outbox to drain',
};

/**
 * ShardsAvailable while deleting: the sale is closed, so no shard is there to sell from any more,
 * whatever the engines still hold; the counts say how far they are with letting go.
 */
function shardsWhileDeleting(shards: EventInventory['shards']): ConditionUpdate {
  const { desired, named, owned } = shards;
  return {
    type: ConditionType.ShardsAvailable,
    status: 'False',
    reason: 'SaleClosing',
    message:
      named === 0
        ? `the sale is closed for deletion; engines have released all ${desired} shards`
        : `the sale is closed for deletion; engines are releasing its shards: ${named}/${desired} still held (${owned} by a live engine)`,
  };
}

/**
 * How long a Deployment may go without a report from a controller before the operator takes it that
 * none runs (an API server without a controller-manager, as `hack/infra.sh` runs): a real one
 * reports within moments of the Deployment's creation.
 */
export const CONTROLLER_REPORT_GRACE_MS = 10_000;

/**
 * ShardsAvailable before the opening, from the engine Deployment, when it says something: engines
 * claim shards only once the sale opens, but their pods must be running before (an image that
 * cannot be pulled, pods that cannot be scheduled or keep crashing would serve nothing). Undefined
 * when there is nothing to judge by (no controller reports on Deployments), or an engine pod is
 * available. A Deployment that does not exist yet, or that no controller has reported on yet while
 * one still might, counts as no pod available.
 */
function enginesBeforeOpening(
  object: TicketEventObject,
  engines: Observed['engines'],
  opensAt: Date,
  now: Date,
): ConditionUpdate | undefined {
  if (engines === undefined) return undefined;
  const deployment = childNames(object.metadata.name).engine;
  const unavailable = (reason: string, message: string): ConditionUpdate => ({
    type: ConditionType.ShardsAvailable,
    status: 'False',
    reason,
    message: `${message}: nothing would claim the shards when the sale opens at ${rfc3339(opensAt)}`,
  });
  if ('unknown' in engines)
    return {
      type: ConditionType.ShardsAvailable,
      status: 'Unknown',
      reason: 'EngineAvailabilityUnknown',
      message: `cannot read the engine Deployment ${deployment}: ${engines.unknown}`,
    };
  if (!engines.found) return unavailable('NoEngineAvailable', `the engine Deployment ${deployment} does not exist yet`);
  const { report } = engines;
  if (report === undefined) {
    const young = reportGraceLeftMs(engines, now) > 0;
    return young ? unavailable('NoEngineAvailable', `no controller has reported on the engine Deployment ${deployment} yet`) : undefined;
  }
  if (report.available > 0) return undefined;
  // Why, when its controller says: until 2026-12-05 a missing ServiceAccount (a namespace the chart
  // did not prepare) or a quota read only as "no engine pod is available" (found by review).
  const why = engines.failing === undefined ? '' : `; its pods cannot be created: ${engines.failing}`;
  return unavailable('NoEngineAvailable', `no engine pod is available (0/${report.replicas} of Deployment ${deployment}${why})`);
}

/**
 * Degraded while the engine Deployment's rollout of its current spec has stopped progressing (its
 * controller gave up after progressDeadlineSeconds): the engines of the spec asked for are not
 * coming — an image that cannot be pulled, pods that cannot be scheduled or keep crashing — whether
 * or not the old ones still serve (a rolling update keeps them until the new ones are available).
 * Not before the Deployment is the current spec's: a stall of the rollout before an edit says
 * nothing of the edit.
 */
function rolloutStalled(
  object: TicketEventObject,
  engines: Observed['engines'],
  before: TicketEventStatus | undefined,
): ConditionUpdate | undefined {
  if (engines !== undefined && 'unknown' in engines) {
    // Unreadable now: what was last known stands — a stall is not over because it cannot be seen
    // (else a pipeline waiting for Ready could pass on a failed read).
    const last = findCondition(before, ConditionType.Degraded);
    return last?.reason === 'EngineRolloutStalled'
      ? { type: ConditionType.Degraded, status: 'True', reason: last.reason, message: last.message }
      : undefined;
  }
  if (engines === undefined || !engines.found || engines.stalled === undefined) return undefined;
  const deployment = childNames(object.metadata.name).engine;
  return {
    type: ConditionType.Degraded,
    status: 'True',
    reason: 'EngineRolloutStalled',
    message: `the rollout of the engine Deployment ${deployment} is not progressing: ${engines.stalled}`,
  };
}

/** What deletion is waiting for, as the Ready condition says it. */
function drainMessage(named: number, desired: number, held: number, unpublished: number, deadline: Date): string {
  const waits: string[] = [];
  const engines = [
    ...(named > 0 ? [`release ${named} of ${desired} shards`] : []),
    ...(held > 0 ? [`end the holds on ${held} seats and places`] : []),
  ];
  if (engines.length > 0) waits.push(`until ${rfc3339(deadline)} for engines to ${engines.join(' and ')}`);
  if (unpublished > 0) waits.push(`for ${unpublished} reservations not yet published to Kafka`);
  return waits.length === 0
    ? 'sale closed; checking that engines have drained before archiving'
    : `sale closed; waiting ${waits.join(', and ')} before archiving`;
}

/** How long after the opening the operator looks again every OPENING_LOOK_MS while shards are still being claimed. */
const OPENING_MS = 30_000;
const OPENING_LOOK_MS = 1_000;

/**
 * When to look again. The operator's own status writes do not wake it (operator.ts), so it wakes
 * itself: at the refresh interval while the sale is pending or open, and sooner at the next edge
 * of the sale window in force; right after the opening, every second until the engines have
 * claimed every shard (they do so within a round or two, and Ready says so at once); after the
 * close, until no live engine owns a shard and no seat is held any more (the counts of the last
 * commits and of the ended holds), then never — a shard that names a dead engine, with nothing
 * held, is left as it is (no engine settles a shard without live holds).
 */
function nextLook(inventory: EventInventory | undefined, phase: TicketEventPhase, now: Date, settings: PlanSettings): number | undefined {
  if (phase === 'Failed') return undefined;
  if (phase === 'Closed')
    return inventory !== undefined && (inventory.held > 0 || inventory.shards.owned > 0) ? settings.refreshIntervalMs : undefined;
  let wait = settings.refreshIntervalMs;
  if (inventory === undefined) return wait;
  const sinceOpening = now.getTime() - inventory.sale.opensAt.getTime();
  if (sinceOpening >= 0 && sinceOpening < OPENING_MS && inventory.shards.owned < inventory.shards.desired)
    wait = Math.min(wait, OPENING_LOOK_MS);
  // Wake exactly at the next edge of the window the phase follows (not a refused spec's), so it flips on time.
  for (const edge of [inventory.sale.opensAt.getTime(), inventory.sale.closesAt.getTime()]) {
    const until = edge - now.getTime();
    if (until > 0 && until < wait) wait = until + 10;
  }
  return wait;
}

function readyMessage(phase: TicketEventPhase): string {
  switch (phase) {
    case 'Pending':
      return 'inventory provisioned; the sale has not opened yet (engines claim its shards when it opens)';
    case 'OnSale':
      return 'on sale: inventory provisioned and every shard owned';
    case 'SoldOut':
      return 'sold out';
    case 'Closed':
      return 'the sale window is over';
    default:
      return `phase ${phase}`;
  }
}

function phaseMessage(phase: TicketEventPhase, eventId: string): string {
  switch (phase) {
    case 'Pending':
      return `Event ${eventId} is provisioned; its sale has not opened yet`;
    case 'Provisioning':
      return `Provisioning event ${eventId}`;
    case 'OnSale':
      return `Event ${eventId} is on sale`;
    case 'SoldOut':
      return `Event ${eventId} is sold out`;
    case 'Closed':
      return `The sale of event ${eventId} is closed`;
    case 'Failed':
      return `Event ${eventId} cannot be provisioned; see the InventoryProvisioned condition`;
  }
}
