import t from 'tap';
import type { ProvisionOutcome } from '../../../src/engine/provision.js';
import { DependencyError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import type { TicketEventStatus } from '../../../src/operator/api/v1alpha1.js';
import type { ChildObject } from '../../../src/operator/children.js';
import type { EventInventory, InventoryPort } from '../../../src/operator/inventory-port.js';
import { KubernetesConflictError, KubernetesRejectedError, translateKubernetesError } from '../../../src/operator/kube-errors.js';
import type { EngineAvailability, EngineDeployments, KubeGateway } from '../../../src/operator/kube-gateway.js';
import type { RecordedEvent } from '../../../src/operator/plan.js';
import { TicketEventReconciler } from '../../../src/operator/reconciler.js';
import type { TicketEventObject } from '../../../src/operator/types.js';
import { counts, NOW, SETTINGS, ticketEvent } from './fixtures.js';

/** An in-memory API server of one object, recording what the reconciler does. */
function world(
  initial: TicketEventObject,
  options: {
    provision?: () => Promise<ProvisionOutcome>;
    counts?: EventInventory;
    applyFails?: Error;
    /** The dry run of this kind of child is refused with this error. */
    dryRunRejects?: { kind: string; error: Error };
    /** An object of this kind exists under the child's name, with these owners. */
    namesake?: { kind: string; owners: { apiVersion: string; kind: string; name: string; uid: string }[] };
    unpublished?: () => number;
    clock?: () => Date;
    /** What the engine Deployment's controller reports (none by default, as with no controller-manager). */
    engines?: EngineAvailability;
    /** Reading the engine Deployment fails with this error. */
    enginesFail?: Error;
    /** Where the reconciler reads the engine Deployment instead of the gateway's GET. */
    readEngines?: EngineDeployments;
    /** Before each of this many finalizer writes, another writer changes the object (a 409 for a stale read). */
    othersWriteFirst?: number;
  } = {},
) {
  const log: string[] = [];
  let stored: TicketEventObject | undefined = initial;
  const bump = (o: TicketEventObject): TicketEventObject => ({
    ...o,
    metadata: { ...o.metadata, resourceVersion: String(Number(o.metadata.resourceVersion) + 1) },
  });
  const gateway: KubeGateway = {
    async getTicketEvent() {
      return stored;
    },
    async replaceStatus(object, status: TicketEventStatus) {
      log.push(`status ${status.phase}`);
      stored = bump({ ...object, status });
      return stored;
    },
    async setFinalizers(object, finalizers) {
      log.push(`finalizers [${finalizers.join(',')}]`);
      if (stored !== undefined && (options.othersWriteFirst ?? 0) > 0) {
        options.othersWriteFirst!--;
        stored = bump(stored); // kubectl annotate, say
      }
      // The resourceVersion is a precondition, as in the API server's merge patch.
      if (stored !== undefined && object.metadata.resourceVersion !== stored.metadata.resourceVersion)
        throw new KubernetesConflictError(`stale resourceVersion ${object.metadata.resourceVersion}`);
      stored =
        finalizers.length === 0 && object.metadata.deletionTimestamp
          ? undefined
          : bump({ ...object, metadata: { ...object.metadata, finalizers } });
      return stored;
    },
    async apply(child: ChildObject, applyOptions) {
      if (applyOptions?.dryRun === true) {
        if (options.dryRunRejects?.kind === child.kind) throw options.dryRunRejects.error;
        log.push(`dry-run ${child.kind}`);
        return;
      }
      if (options.applyFails) throw options.applyFails;
      log.push(`apply ${child.kind}`);
    },
    async ownersOf(child: ChildObject) {
      return options.namesake?.kind === child.kind ? options.namesake.owners : undefined;
    },
    async recordEvent(_object, event: RecordedEvent) {
      log.push(`event ${event.reason}`);
    },
    async engineAvailability(key) {
      log.push(`read Deployment ${key.name}`);
      if (options.enginesFail) throw options.enginesFail;
      // By default as under hack/infra.sh: a Deployment no controller reports on.
      return options.engines ?? { found: true, createdAt: undefined, report: undefined };
    },
  };
  const inventory: InventoryPort = {
    async provision() {
      log.push('provision');
      return options.provision ? options.provision() : { status: 'unchanged' };
    },
    async counts() {
      return options.counts;
    },
    async unpublished() {
      return options.unpublished?.() ?? 0;
    },
    async close() {
      log.push('close');
    },
    async archive() {
      log.push('archive');
      return { archivedReservations: 2 };
    },
  };
  const reconciler = new TicketEventReconciler({
    gateway,
    ...(options.readEngines === undefined ? {} : { engines: options.readEngines }),
    inventory,
    settings: SETTINGS,
    log: silentLogger,
    clock: options.clock ?? (() => NOW),
  });
  return { log, reconciler, stored: () => stored };
}

const key = { namespace: 'shows', name: 'arena' };

t.test('a finalizer write that conflicts with another writer is made again on a fresh read, and fails nothing', async (t) => {
  const w = world(ticketEvent({ metadata: { finalizers: [] } }), { othersWriteFirst: 2 });
  await w.reconciler.reconcile(key);
  t.same(
    w.log.filter((line) => line.startsWith('finalizers')),
    ['finalizers [sentinel.dev/inventory]', 'finalizers [sentinel.dev/inventory]', 'finalizers [sentinel.dev/inventory]'],
    'two conflicts, then written',
  );
  t.same(w.stored()?.metadata.finalizers, ['sentinel.dev/inventory']);
  t.notOk(w.log.includes('event ReconcileError'), 'no Warning for it');
  t.notMatch(JSON.stringify(w.stored()?.status?.conditions ?? []), /ReconcileError/, 'nor a Degraded condition');

  const racing = world(ticketEvent({ metadata: { finalizers: [] } }), { othersWriteFirst: 10 });
  await t.rejects(racing.reconciler.reconcile(key), KubernetesConflictError, 'still conflicting after its attempts: requeued');
  t.notOk(racing.log.includes('event ReconcileError'), 'and not reported as a failure of the event');
});

t.test('the finalizer goes on before anything is provisioned', async (t) => {
  const w = world(ticketEvent({ metadata: { finalizers: [] } }), {
    provision: async () => ({ status: 'created', seats: 20, pools: 1, shards: 3 }),
    counts: counts(),
  });
  const result = await w.reconciler.reconcile(key);
  t.same(w.log.slice(0, 6), [
    'finalizers [sentinel.dev/inventory]',
    'dry-run ConfigMap',
    'dry-run Deployment',
    'dry-run Service',
    'dry-run PodDisruptionBudget',
    'provision',
  ]);
  t.ok(w.log.includes('apply Deployment'));
  t.ok(w.log.includes('status OnSale'));
  t.ok(w.log.includes('event Provisioned'));
  t.equal(result.requeueAfterMs, SETTINGS.refreshIntervalMs);
});

t.test('a second reconcile with nothing new writes no status and records no event', async (t) => {
  const w = world(ticketEvent(), { counts: counts() });
  await w.reconciler.reconcile(key);
  w.log.length = 0;
  await w.reconciler.reconcile(key);
  t.same(
    w.log.filter((l) => !l.startsWith('apply') && !l.startsWith('dry-run')),
    ['provision', 'read Deployment arena-engine'],
  );
});

t.test("the engine Deployment's availability is read from before the opening to the close", async (t) => {
  const before = () => new Date('2030-05-01T09:00:00Z');
  const pending = world(ticketEvent(), {
    counts: counts({ owned: 0 }),
    clock: before,
    engines: { found: true, createdAt: undefined, report: { available: 0, replicas: 2 } },
  });
  await pending.reconciler.reconcile(key);
  t.ok(pending.log.includes('read Deployment arena-engine'));
  const ready = pending.stored()?.status?.conditions?.find((c) => c.type === 'Ready');
  t.match(ready, { status: 'False', reason: 'NoEngineAvailable' });

  const open = world(ticketEvent(), {
    counts: counts(),
    engines: { found: true, createdAt: undefined, report: { available: 2, replicas: 2 }, stalled: 'timed out progressing' },
  });
  await open.reconciler.reconcile(key);
  t.ok(open.log.includes('read Deployment arena-engine'), 'on sale too: a rollout may stall');
  t.match(
    open.stored()?.status?.conditions?.find((c) => c.type === 'Degraded'),
    { status: 'True', reason: 'EngineRolloutStalled' },
  );
  t.ok(open.log.includes('event EngineRolloutStalled'));

  const closed = world(ticketEvent(), { counts: counts(), clock: () => new Date('2030-05-01T23:00:00Z') });
  await closed.reconciler.reconcile(key);
  t.notOk(
    closed.log.some((l) => l.startsWith('read Deployment')),
    'after the close no engine is needed',
  );

  const failingOnSale = world(ticketEvent(), { counts: counts(), enginesFail: new DependencyError('kubernetes', 'timeout') });
  await failingOnSale.reconciler.reconcile(key);
  t.match(
    failingOnSale.stored()?.status?.conditions?.find((c) => c.type === 'Ready'),
    { status: 'True' },
    'on sale, an unreadable Deployment changes nothing: shard ownership says whether engines serve',
  );

  const unreadable = world(ticketEvent(), {
    counts: counts({ owned: 0 }),
    clock: before,
    enginesFail: new DependencyError('kubernetes', 'deployments.apps "arena-engine" is forbidden'),
  });
  const result = await unreadable.reconciler.reconcile(key);
  t.ok(unreadable.log.includes('apply Deployment'), 'a failed read does not stop the reconcile: children applied');
  const shards = unreadable.stored()?.status?.conditions?.find((c) => c.type === 'ShardsAvailable');
  t.match(shards, { status: 'Unknown', reason: 'EngineAvailabilityUnknown', message: /forbidden/ });
  t.match(
    unreadable.stored()?.status?.conditions?.find((c) => c.type === 'Degraded'),
    { status: 'False' },
  );
  t.equal(result.requeueAfterMs, SETTINGS.refreshIntervalMs, 'and it looks again at the usual pace');
});

t.test('the engine Deployment is read where the reconciler is told to (the reflector cache), not with a GET', async (t) => {
  const reads: string[] = [];
  const w = world(ticketEvent(), {
    counts: counts({ owned: 0 }),
    clock: () => new Date('2030-05-01T09:00:00Z'),
    readEngines: {
      async engineAvailability(k) {
        reads.push(k.name);
        return { found: false };
      },
    },
  });
  await w.reconciler.reconcile(key);
  t.same(reads, ['arena-engine']);
  t.notOk(
    w.log.some((l) => l.startsWith('read Deployment')),
    'no GET',
  );
  t.match(
    w.stored()?.status?.conditions?.find((c) => c.type === 'ShardsAvailable'),
    { reason: 'NoEngineAvailable', message: /does not exist yet/ },
  );
});

t.test('an invalid spec is refused without touching the inventory', async (t) => {
  const w = world(ticketEvent({ spec: { shardCount: 99 } }));
  const result = await w.reconciler.reconcile(key);
  t.notOk(w.log.includes('provision'));
  t.equal(w.stored()?.status?.phase, 'Failed');
  t.equal(result.requeueAfterMs, undefined, 'terminal: no requeue');
});

t.test('a failure is reported on the object, then rethrown for the controller', async (t) => {
  const down = world(ticketEvent(), {
    provision: async () => {
      throw new DependencyError('postgres', 'connection refused');
    },
  });
  await t.rejects(down.reconciler.reconcile(key), { code: 'postgres_unavailable', retryable: true });
  const status = down.stored()?.status;
  t.match(
    status?.conditions?.find((c) => c.type === 'Degraded'),
    { status: 'True', reason: 'ReconcileError', message: /will retry: connection refused/ },
  );
  t.ok(down.log.includes('event ReconcileError'));

  const rejected = world(ticketEvent(), {
    counts: counts(),
    applyFails: new KubernetesRejectedError('apply Deployment: invalid image', 422),
  });
  await t.rejects(rejected.reconciler.reconcile(key), { code: 'kubernetes_rejected', retryable: false });
  t.equal(rejected.stored()?.status?.phase, 'OnSale', 'a provisioned sale keeps its phase: it goes on whatever the operator fails to do');
  t.match(
    rejected.stored()?.status?.conditions?.find((c) => c.type === 'Ready'),
    { reason: 'ReconcileFailed' },
  );

  // A 403 (RBAC, a quota, an admission webhook) is retried, and named as what it is.
  const forbidden = world(ticketEvent(), {
    counts: counts(),
    applyFails: translateKubernetesError(
      Object.assign(new Error('HTTP-Code: 403'), {
        code: 403,
        body: JSON.stringify({ message: 'deployments.apps "arena-engine" is forbidden: exceeded quota: compute' }),
      }),
      'apply Deployment shows/arena-engine',
    ),
  });
  await t.rejects(forbidden.reconciler.reconcile(key), { code: 'kubernetes_forbidden', retryable: true });
  t.match(
    forbidden.stored()?.status?.conditions?.find((c) => c.type === 'Degraded'),
    {
      reason: 'Forbidden',
      message:
        /^will retry: apply Deployment shows\/arena-engine: .*exceeded quota: compute \(HTTP 403: RBAC, a quota or an admission webhook refuses it\)$/,
    },
  );

  const never = world(ticketEvent(), { applyFails: new KubernetesRejectedError('apply Deployment: invalid image', 422) });
  await t.rejects(never.reconciler.reconcile(key), { code: 'kubernetes_rejected' });
  t.equal(never.stored()?.status?.phase, 'Failed', 'an event never provisioned can only be Failed');
});

t.test('a failure reports the phase of the sale window in force, not of the spec', async (t) => {
  // The spec's close was moved to before now, but the inventory (which engines sell by) still has the old one.
  const w = world(ticketEvent({ spec: { sale: { opensAt: '2030-05-01T10:00:00Z', closesAt: '2030-05-01T10:30:00Z' } } }), {
    counts: counts(),
    applyFails: new KubernetesRejectedError('apply Deployment: invalid image', 422),
  });
  await t.rejects(w.reconciler.reconcile(key), { code: 'kubernetes_rejected' });
  t.equal(w.stored()?.status?.phase, 'OnSale');
});

t.test('a child the API server refuses in the dry run stops the reconcile before anything is written', async (t) => {
  const apiMessage =
    'Deployment.apps "arena-engine" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1';
  const cause = Object.assign(new Error('HTTP-Code: 422'), { code: 422, body: JSON.stringify({ message: apiMessage }) });
  const w = world(ticketEvent({ metadata: { generation: 4 }, status: { phase: 'OnSale', observedGeneration: 3 } }), {
    counts: counts(),
    dryRunRejects: { kind: 'Deployment', error: new KubernetesRejectedError(`dry-run apply Deployment: ${apiMessage}`, 422, cause) },
  });
  const result = await w.reconciler.reconcile(key);
  t.notOk(w.log.includes('provision'), 'the inventory is not touched: no new settings committed');
  t.notOk(
    w.log.some((l) => l.startsWith('apply')),
    'no child applied',
  );
  const status = w.stored()?.status;
  t.equal(status?.phase, 'OnSale', 'the phase keeps following the sale');
  t.equal(status?.observedGeneration, 4, 'the refusal describes this generation');
  const provisioned = status?.conditions?.find((c) => c.type === 'InventoryProvisioned');
  t.match(provisioned, {
    status: 'False',
    reason: 'ChildRejected',
    message:
      /^spec\.engine\.resources: the API server refuses the Deployment arena-engine.*less than or equal to cpu limit of 1.*nothing of this change was applied/,
  });
  t.match(
    status?.conditions?.find((c) => c.type === 'Degraded'),
    { status: 'True', reason: 'ChildRejected' },
  );
  t.ok(w.log.includes('event ChildRejected'), 'a Warning event');
  t.equal(result.requeueAfterMs, SETTINGS.refreshIntervalMs, 'a live sale keeps being refreshed');
});

t.test("a child's namesake that is not the TicketEvent's is neither taken over nor written, and nothing is provisioned", async (t) => {
  const chart = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'sentinel', uid: 'not-the-ticket-events' };
  const fresh = world(ticketEvent({ metadata: { generation: 1 } }), { namesake: { kind: 'ConfigMap', owners: [chart] } });
  const freshResult = await fresh.reconciler.reconcile(key);
  t.notOk(fresh.log.includes('provision'), 'the inventory is not touched');
  t.notOk(
    fresh.log.some((l) => l.startsWith('apply') || l.startsWith('dry-run')),
    'no child applied, not even in a dry run',
  );
  const status = fresh.stored()?.status;
  t.equal(status?.phase, 'Failed', 'never provisioned: nothing to sell with');
  t.match(
    status?.conditions?.find((c) => c.type === 'InventoryProvisioned'),
    {
      status: 'False',
      reason: 'ChildNotOwned',
      message: /^the ConfigMap arena-engine this TicketEvent needs exists and is not its own \(its owners: Deployment sentinel\)/,
    },
  );
  t.ok(fresh.log.includes('event ChildNotOwned'), 'a Warning event');
  t.equal(
    freshResult.requeueAfterMs,
    SETTINGS.refreshIntervalMs,
    'looked at again: the namesake may go away without any change to the TicketEvent',
  );

  // A live sale whose child was replaced by someone else's object keeps selling, and that object is left alone.
  const live = world(
    ticketEvent({
      metadata: { generation: 4 },
      status: { phase: 'OnSale', observedGeneration: 3, appliedEngine: { replicas: 2, logLevel: 'info' } },
    }),
    {
      counts: counts(),
      namesake: { kind: 'Service', owners: [] },
    },
  );
  await live.reconciler.reconcile(key);
  t.match(
    live.stored()?.status?.conditions?.find((c) => c.type === 'InventoryProvisioned'),
    {
      reason: 'ChildNotOwned',
      message: /Service arena-engine-metrics .*\(it has no owner\)/,
    },
  );
  t.equal(live.stored()?.status?.phase, 'OnSale');
  t.notOk(
    live.log.some((l) => l.startsWith('apply')),
    'the accepted children are not re-applied over it',
  );

  // An earlier TicketEvent of the same name, deleted, whose children the garbage collector has not
  // removed yet: not someone else's — a retryable wait, neither Failed nor advice to delete them.
  const remade = world(ticketEvent({ metadata: { generation: 1 } }), {
    namesake: {
      kind: 'Deployment',
      owners: [{ apiVersion: 'sentinel.dev/v1alpha1', kind: 'TicketEvent', name: 'arena', uid: 'uid-of-the-deleted-one' }],
    },
  });
  await t.rejects(remade.reconciler.reconcile(key), { code: 'children_of_earlier_ticket_event', retryable: true });
  t.notOk(remade.log.includes('provision'));
  t.not(remade.stored()?.status?.phase, 'Failed');
  t.match(
    remade.stored()?.status?.conditions?.find((c) => c.type === 'Degraded'),
    {
      reason: 'ReconcileError',
      message: /^will retry: the Deployment arena-engine still belongs to an earlier TicketEvent of this name/,
    },
  );

  // A TicketEvent of another API group with the same name is someone else.
  const foreign = world(ticketEvent({ metadata: { generation: 1 } }), {
    namesake: { kind: 'Deployment', owners: [{ apiVersion: 'tickets.example.com/v1', kind: 'TicketEvent', name: 'arena', uid: 'x' }] },
  });
  await foreign.reconciler.reconcile(key);
  t.match(
    foreign.stored()?.status?.conditions?.find((c) => c.type === 'InventoryProvisioned'),
    { reason: 'ChildNotOwned' },
  );

  // The TicketEvent's own children pass.
  const own = world(ticketEvent({ metadata: { generation: 1 } }), {
    namesake: {
      kind: 'ConfigMap',
      owners: [{ apiVersion: 'sentinel.dev/v1alpha1', kind: 'TicketEvent', name: 'arena', uid: ticketEvent().metadata.uid! }],
    },
  });
  await own.reconciler.reconcile(key);
  t.ok(own.log.includes('provision'));
});

t.test('deletion: close and record when; archive, record, then let go (no status write on a vanishing object)', async (t) => {
  let now = NOW;
  const w = world(ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T11:59:00Z' } }), {
    counts: counts({ owned: 0 }),
    clock: () => now,
  });
  await w.reconciler.reconcile(key);
  t.same(w.log, ['close', 'status Closed', 'event Closing'], 'never archived on counts read before the close');
  t.equal(w.stored()?.status?.drainingSince, NOW.toISOString());
  w.log.length = 0;
  now = new Date(NOW.getTime() + SETTINGS.drainPollMs);
  await w.reconciler.reconcile(key);
  t.same(w.log, ['close', 'archive', 'event Archived', 'finalizers []']);
  t.equal(w.stored(), undefined);
});

t.test('deletion keeps the finalizer while the outbox has unpublished rows, past the drain timeout', async (t) => {
  let now = NOW;
  let unpublished = 3;
  const w = world(ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T11:59:00Z' } }), {
    counts: counts({ owned: 0 }),
    unpublished: () => unpublished,
    clock: () => now,
  });
  await w.reconciler.reconcile(key);
  now = new Date(NOW.getTime() + SETTINGS.drainTimeoutMs + 1);
  await w.reconciler.reconcile(key);
  await w.reconciler.reconcile(key);
  t.notOk(w.log.includes('archive'));
  t.notOk(w.log.includes('finalizers []'));
  t.equal(w.log.filter((l) => l === 'event OutboxNotDrained').length, 1, 'one Warning, not one per poll');
  t.match(
    w.stored()?.status?.conditions?.find((c) => c.type === 'Ready'),
    { reason: 'Draining', message: /3 reservations not yet published to Kafka/ },
  );
  unpublished = 0;
  await w.reconciler.reconcile(key);
  t.equal(w.stored(), undefined, 'published: the object goes');
});
