/**
 * The TicketEvent reconciler, controller-runtime style: given a key (never an event), read the
 * object, ensure the finalizer, validate the children with a server-side dry run, provision the
 * inventory (idempotent), decide with the pure `plan`, apply the children with server-side apply,
 * fold the status. Nothing of a generation is written before every part of it was accepted: the
 * inventory refuses unsafe changes, the API server (in the dry run) refuses children it would not
 * store. Errors are thrown to the controller, which requeues retryable ones with backoff and leaves
 * terminal ones until the object changes; either way the failure is first reported on the object.
 */
import { GROUP, KIND, type TicketEventPhase } from './api/v1alpha1.js';
import type { ProvisionOutcome } from '../engine/provision.js';
import { SentinelError } from '../errors.js';
import type { Logger } from '../log.js';
import { ConditionType, findCondition } from './conditions.js';
import { childNames, desiredChildren, type ChildObject } from './children.js';
import { eventSpecOf } from './event-spec.js';
import { eventIdOf, type ObjectKey } from './event-id.js';
import type { EventInventory, InventoryPort } from './inventory-port.js';
import { KubernetesConflictError, KubernetesForbiddenError, KubernetesRejectedError, kubernetesMessage } from './kube-errors.js';
import type { EngineDeployments, KubeGateway } from './kube-gateway.js';
import {
  CHILD_REFUSALS,
  phaseOf,
  plan,
  type Observed,
  type Plan,
  type PlanSettings,
  type RecordedEvent,
  type RejectedChild,
} from './plan.js';
import { writeFinalizers, writeStatus } from './status-writer.js';
import { FINALIZER, type TicketEventObject } from './types.js';

/** What one reconcile asks of the controller. */
export interface ReconcileResult {
  /** Reconcile again after this long (undefined: only on change or resync). */
  readonly requeueAfterMs?: number;
}

export interface ReconcilerDependencies {
  readonly gateway: KubeGateway;
  /** Where the engine Deployment is read; the gateway (a GET) by default. */
  readonly engines?: EngineDeployments;
  readonly inventory: InventoryPort;
  readonly settings: PlanSettings;
  readonly log: Logger;
  readonly clock?: () => Date;
}

export class TicketEventReconciler {
  private readonly gateway: KubeGateway;
  private readonly engines: EngineDeployments;
  private readonly inventory: InventoryPort;
  private readonly settings: PlanSettings;
  private readonly log: Logger;
  private readonly clock: () => Date;

  constructor(dependencies: ReconcilerDependencies) {
    this.gateway = dependencies.gateway;
    this.engines = dependencies.engines ?? dependencies.gateway;
    this.inventory = dependencies.inventory;
    this.settings = dependencies.settings;
    this.log = dependencies.log;
    this.clock = dependencies.clock ?? (() => new Date());
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult> {
    const found = await this.gateway.getTicketEvent(key);
    if (found === undefined) return {};
    const log = this.log.child({ ticketEvent: `${key.namespace}/${key.name}`, generation: found.metadata.generation });
    try {
      return await this.reconcileObject(found, log);
    } catch (error) {
      // A conflict that outlasted its re-reads is other writers racing ours, not a failure of the
      // event's: the requeue looks again, and Ready and Degraded do not flip for it.
      if (error instanceof KubernetesConflictError) log.debug({ err: error.message }, 'Conflicting writes; requeued');
      else await this.reportFailure(found, error, log);
      throw error;
    }
  }

  private async reconcileObject(found: TicketEventObject, log: Logger): Promise<ReconcileResult> {
    let object: TicketEventObject | undefined = found;
    const eventId = eventIdOf(object.metadata);
    const deleting = object.metadata.deletionTimestamp !== undefined;
    const finalizers = object.metadata.finalizers ?? [];
    let provision: ProvisionOutcome | undefined;
    let rejected: RejectedChild | undefined;
    let inventory: EventInventory | undefined;
    let unpublished: number | undefined;
    let engines: Observed['engines'];
    if (!deleting) {
      // The finalizer goes on before anything exists outside Kubernetes, so nothing can be orphaned.
      if (!finalizers.includes(FINALIZER)) {
        // Not onto an object being deleted meanwhile (the API server refuses new finalizers there):
        // without the finalizer nothing was made outside Kubernetes, so there is nothing to clean up.
        object = await writeFinalizers(this.gateway, object, (o) => {
          const now = o.metadata.finalizers ?? [];
          return o.metadata.deletionTimestamp !== undefined || now.includes(FINALIZER) ? undefined : [...now, FINALIZER];
        });
        if (object === undefined || object.metadata.deletionTimestamp !== undefined) return {};
        log.debug('Added finalizer');
      }
      const desired = eventSpecOf(object);
      if (!desired.ok) {
        provision = { status: 'refused', reason: 'invalid', message: desired.message };
      } else {
        // Children first, in a dry run: a child the API server would refuse stops the reconcile
        // before the inventory commits this generation's settings, so nothing is half-applied.
        // Only for a generation not yet accepted: the periodic refreshes of an accepted one would
        // repeat four API requests each to learn what the last one already established.
        const accepted =
          object.status?.observedGeneration === object.metadata.generation &&
          !CHILD_REFUSALS.includes(findCondition(object.status, ConditionType.InventoryProvisioned)?.reason ?? '');
        if (!accepted) rejected = await this.dryRun(object, desiredChildren(object, this.settings.engine));
        if (rejected !== undefined) log.warn({ eventId, rejected }, 'The API server refuses a child; nothing applied');
        else provision = await this.inventory.provision(desired.spec);
      }
      if (provision !== undefined && provision.status !== 'unchanged') log.info({ eventId, outcome: provision }, 'Provisioned inventory');
    } else if (!finalizers.includes(FINALIZER)) {
      return {};
    }
    inventory = await this.inventory.counts(eventId);
    // Deletion lets the engines (the outbox's only relay) go: it waits for the outbox first.
    if (deleting && inventory !== undefined) unpublished = await this.inventory.unpublished(eventId);
    // The engine Deployment: before the opening no shard is owned, so only it can tell whether any
    // engine will be there to own one; and at any time before the close, whether a rollout of its
    // spec is stuck. Only an observation: when it cannot be read, the reconcile goes on without it
    // (the children are still applied, the status still written).
    const now = this.clock();
    const phase = deleting ? undefined : phaseOf(inventory, now);
    if (phase === 'Pending' || phase === 'OnSale' || phase === 'SoldOut') {
      const name = childNames(object.metadata.name).engine;
      try {
        engines = await this.engines.engineAvailability({ namespace: object.metadata.namespace, name });
      } catch (error) {
        engines = { unknown: error instanceof Error ? error.message : String(error) };
        // Said once, not at every reconcile: while pending, the status shows it for as long as it
        // lasts; after the opening the shards' owners say what matters, and the next read may work.
        const known = findCondition(object.status, ConditionType.ShardsAvailable)?.reason === 'EngineAvailabilityUnknown';
        const fields = { eventId, deployment: name, err: engines.unknown };
        if (known || phase !== 'Pending') log.debug(fields, 'Cannot read the engine Deployment');
        else log.warn(fields, 'Cannot read the engine Deployment');
      }
    }

    const decided: Plan = plan(
      object,
      {
        now,
        inventory,
        ...(provision === undefined ? {} : { provision }),
        ...(rejected === undefined ? {} : { rejected }),
        ...(unpublished === undefined ? {} : { unpublished }),
        ...(engines === undefined ? {} : { engines }),
      },
      this.settings,
    );
    const events: RecordedEvent[] = [...decided.events];
    let removed = false;
    for (const action of decided.actions) {
      switch (action.type) {
        case 'apply':
          await this.gateway.apply(action.object);
          break;
        case 'close-sale':
          await this.inventory.close(eventId);
          break;
        case 'archive': {
          const { archivedReservations } = await this.inventory.archive(eventId);
          inventory = undefined;
          log.info({ eventId, archivedReservations }, 'Archived event');
          events.push({
            type: 'Normal',
            reason: 'Archived',
            message: `Archived event ${eventId}: ${archivedReservations} reservations kept`,
          });
          break;
        }
        case 'remove-finalizer': {
          // Events first: once the finalizer is gone the object (and soon its namespace) may vanish.
          await this.record(object, events, log);
          events.length = 0;
          await writeFinalizers(this.gateway, object, (o) => {
            const now = o.metadata.finalizers ?? [];
            return now.includes(FINALIZER) ? now.filter((f) => f !== FINALIZER) : undefined;
          });
          removed = true;
          log.info({ eventId }, 'Removed finalizer');
          break;
        }
      }
    }
    if (!removed && decided.status !== undefined) {
      const written = await writeStatus(this.gateway, object, decided.status, this.clock());
      if (written.changed) log.debug({ phase: written.object.status?.phase }, 'Updated status');
      object = written.object;
    }
    await this.record(object, events, log);
    return decided.requeueAfterMs === undefined ? {} : { requeueAfterMs: decided.requeueAfterMs };
  }

  /**
   * Server-side apply of every child with dryRun=All. Returns the first child whose namesake exists
   * and is not `owner`'s (server-side apply would take it over: a chart's shared ConfigMap, say, that
   * garbage collection would then delete with the TicketEvent), or that the API server refuses
   * (400/422: retrying cannot help until the spec changes); other failures are thrown (retryable).
   */
  private async dryRun(owner: TicketEventObject, children: readonly ChildObject[]): Promise<RejectedChild | undefined> {
    for (const child of children) {
      const owners = await this.gateway.ownersOf(child);
      if (owners !== undefined && !owners.some((o) => o.uid === owner.metadata.uid)) {
        const earlier = owners.find((o) => o.apiVersion.startsWith(`${GROUP}/`) && o.kind === KIND && o.name === owner.metadata.name);
        if (earlier !== undefined) {
          // A TicketEvent of this name deleted and made again before the garbage collector removed
          // its children: theirs, not someone else's — wait for them to go (retried with backoff).
          throw new SentinelError(
            'children_of_earlier_ticket_event',
            `the ${child.kind} ${child.metadata.name} still belongs to an earlier TicketEvent of this name (uid ${earlier.uid}), which the garbage collector is deleting`,
            { retryable: true },
          );
        }
        const whose = owners.length === 0 ? 'it has no owner' : `its owners: ${owners.map((o) => `${o.kind} ${o.name}`).join(', ')}`;
        return { kind: child.kind, name: child.metadata.name, message: whose, notOwned: true };
      }
      try {
        await this.gateway.apply(child, { dryRun: true });
      } catch (error) {
        if (!(error instanceof KubernetesRejectedError)) throw error;
        return { kind: child.kind, name: child.metadata.name, message: kubernetesMessage(error.cause ?? error) };
      }
    }
    return undefined;
  }

  /**
   * Puts a failed reconcile on the object (Degraded, and Ready=False) so `kubectl describe` shows why.
   * A terminal failure makes the phase `Failed` only for an event that was never provisioned: a
   * provisioned sale goes on whatever the operator fails to do, so its phase keeps following the sale.
   */
  private async reportFailure(object: TicketEventObject, error: unknown, log: Logger): Promise<void> {
    const retryable = !(error instanceof SentinelError) || error.retryable;
    const message = error instanceof Error ? error.message : String(error);
    const reason = error instanceof KubernetesForbiddenError ? 'Forbidden' : retryable ? 'ReconcileError' : 'ReconcileFailed';
    log.warn({ err: error, retryable }, 'Reconcile failed');
    if (object.metadata.deletionTimestamp !== undefined && !(object.metadata.finalizers ?? []).includes(FINALIZER)) return;
    try {
      const fresh = (await this.gateway.getTicketEvent(object.metadata)) ?? object;
      const before = findCondition(fresh.status, ConditionType.Degraded);
      const text = `${retryable ? 'will retry' : 'will not succeed until the TicketEvent or the operator settings change'}: ${message}`;
      const phase = retryable || fresh.metadata.deletionTimestamp !== undefined ? undefined : await this.phaseAfterFailure(fresh);
      const written = await writeStatus(
        this.gateway,
        fresh,
        {
          ...(phase === undefined ? {} : { phase }),
          conditions: [
            { type: ConditionType.Ready, status: 'False', reason, message: text },
            { type: ConditionType.Degraded, status: 'True', reason, message: text },
          ],
        },
        this.clock(),
      );
      if (written.changed && before?.reason !== reason)
        await this.record(written.object, [{ type: 'Warning', reason, message: text }], log);
    } catch (statusError) {
      // The original error is what the controller acts on; this one is only logged.
      log.warn({ err: statusError }, 'Could not report the failure on the TicketEvent');
    }
  }

  /** `Failed` for an event never provisioned, the sale's own phase otherwise (undefined: leave it, the inventory cannot be read). */
  private async phaseAfterFailure(object: TicketEventObject): Promise<TicketEventPhase | undefined> {
    try {
      const inventory = await this.inventory.counts(eventIdOf(object.metadata));
      return inventory === undefined ? 'Failed' : phaseOf(inventory, this.clock());
    } catch {
      return undefined;
    }
  }

  /** Events are best-effort, as in client-go's recorder: a lost Event must not fail a reconcile. */
  private async record(object: TicketEventObject, events: readonly RecordedEvent[], log: Logger): Promise<void> {
    for (const event of events) {
      try {
        await this.gateway.recordEvent(object, event);
        log.info({ reason: event.reason, type: event.type }, event.message);
      } catch (error) {
        log.warn({ err: error, reason: event.reason }, 'Could not record event');
      }
    }
  }
}
