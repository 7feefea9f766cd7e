import t from 'tap';
import { applyStatusPatch, ConditionType, type ConditionUpdate, type StatusPatch } from '../../../src/operator/conditions.js';
import { phaseOf, plan, type Action, type Observed } from '../../../src/operator/plan.js';
import { counts, NOW, SETTINGS, ticketEvent } from './fixtures.js';

const condition = (status: StatusPatch | undefined, type: string): ConditionUpdate | undefined =>
  status?.conditions?.find((c) => c.type === type);
const applied = (actions: readonly Action[]): string[] =>
  actions.flatMap((a) => (a.type === 'apply' ? [`${a.object.kind}/${a.object.metadata.name}`] : [a.type]));

t.test('a freshly provisioned event: every child applied, InventoryProvisioned=True with counts', async (t) => {
  const decided = plan(
    ticketEvent(),
    { now: NOW, provision: { status: 'created', seats: 20, pools: 1, shards: 3 }, inventory: counts({ owned: 0 }) },
    SETTINGS,
  );
  t.same(applied(decided.actions), [
    'ConfigMap/arena-engine',
    'Deployment/arena-engine',
    'Service/arena-engine-metrics',
    'PodDisruptionBudget/arena-engine',
  ]);
  t.equal(decided.status?.phase, 'OnSale');
  t.equal(decided.status?.eventId, 'shows--arena');
  t.equal(decided.status?.observedGeneration, 1);
  t.same(decided.status?.seats, { total: 50, available: 50, held: 0, sold: 0 });
  t.same(decided.status?.shards, { desired: 3, ready: 0 });
  t.match(condition(decided.status, ConditionType.InventoryProvisioned), {
    status: 'True',
    reason: 'Provisioned',
    message: /50 seats and places in 3 shards/,
  });
  t.match(condition(decided.status, ConditionType.ShardsAvailable), { status: 'False', reason: 'ShardsUnowned' });
  t.match(condition(decided.status, ConditionType.Degraded), { status: 'True', reason: 'ShardsUnavailable' });
  t.match(condition(decided.status, ConditionType.Ready), { status: 'False', reason: 'ShardsUnowned' });
  t.same(
    decided.events.map((e) => e.reason),
    ['Provisioned', 'PhaseOnSale'],
  );
  t.equal(decided.requeueAfterMs, SETTINGS.refreshIntervalMs, 'counts are refreshed while on sale');
});

t.test('every shard owned: Ready', async (t) => {
  const decided = plan(
    ticketEvent({ status: { phase: 'OnSale' } }),
    { now: NOW, provision: { status: 'unchanged' }, inventory: counts() },
    SETTINGS,
  );
  t.match(condition(decided.status, ConditionType.Ready), { status: 'True', reason: 'Ready' });
  t.match(condition(decided.status, ConditionType.Degraded), { status: 'False', reason: 'AsExpected' });
  t.same(decided.events, [], 'no transition, no event');
});

t.test('shards named by engines that are no longer alive are not owned: not Ready, Degraded during the sale', async (t) => {
  const decided = plan(
    ticketEvent({ status: { phase: 'OnSale' } }),
    { now: NOW, provision: { status: 'unchanged' }, inventory: counts({ owned: 0, named: 3 }) },
    SETTINGS,
  );
  t.match(condition(decided.status, ConditionType.ShardsAvailable), { status: 'False', reason: 'ShardsUnowned' });
  t.match(condition(decided.status, ConditionType.Ready), { status: 'False' });
  t.match(condition(decided.status, ConditionType.Degraded), { status: 'True', reason: 'ShardsUnavailable' });
});

t.test('engine Deployment carries the event id, replicas, owner reference and a non-root, read-only pod', async (t) => {
  const decided = plan(
    ticketEvent({ spec: { engine: { replicas: 5, logLevel: 'debug' } } }),
    { now: NOW, provision: { status: 'unchanged' }, inventory: counts() },
    SETTINGS,
  );
  const deployment = decided.actions.find((a) => a.type === 'apply' && a.object.kind === 'Deployment');
  t.ok(deployment && deployment.type === 'apply');
  if (deployment?.type !== 'apply') return;
  const object = deployment.object as unknown as {
    metadata: { ownerReferences: { kind: string; name: string; uid: string; controller: boolean }[] };
    spec: {
      replicas: number;
      template: {
        spec: {
          securityContext: { runAsNonRoot: boolean };
          containers: { env: { name: string; value?: string }[]; args: string[]; securityContext: { readOnlyRootFilesystem: boolean } }[];
        };
      };
    };
  };
  t.equal(object.spec.replicas, 5);
  t.match(object.metadata.ownerReferences, [{ kind: 'TicketEvent', name: 'arena', uid: 'uid-1', controller: true }]);
  const container = object.spec.template.spec.containers[0];
  t.same(container?.args, ['engine']);
  t.match(container?.env, [{ name: 'SENTINEL_EVENT', value: 'shows--arena' }]);
  t.equal(container?.securityContext.readOnlyRootFilesystem, true);
  t.equal(object.spec.template.spec.securityContext.runAsNonRoot, true);
});

t.test('an unsafe change is refused: nothing applied, a condition explains, the sale goes on', async (t) => {
  const decided = plan(
    ticketEvent({ metadata: { generation: 2 }, status: { phase: 'OnSale', observedGeneration: 1 } }),
    {
      now: NOW,
      provision: {
        status: 'refused',
        reason: 'shard-count-changed',
        message: 'shard count 4 differs from the provisioned 3; it cannot change once provisioned',
      },
      inventory: counts(),
    },
    SETTINGS,
  );
  t.same(decided.actions, [], 'not half-applied: no child changes either');
  t.equal(decided.status?.phase, 'OnSale');
  t.match(condition(decided.status, ConditionType.InventoryProvisioned), {
    status: 'False',
    reason: 'UnsafeChangeRefused',
    message: /shard count 4 differs.*nothing of this change was applied/,
  });
  t.match(condition(decided.status, ConditionType.Degraded), { status: 'True', reason: 'UnsafeChangeRefused' });
  t.match(condition(decided.status, ConditionType.Ready), { status: 'False', reason: 'UnsafeChangeRefused' });
  t.match(decided.events, [{ type: 'Warning', reason: 'UnsafeChangeRefused' }]);
  t.equal(decided.requeueAfterMs, SETTINGS.refreshIntervalMs);
});

t.test('children are applied from an accepted spec, which the status records; a refusal re-applies that one', async (t) => {
  const accepted = plan(ticketEvent(), { now: NOW, provision: { status: 'unchanged' }, inventory: counts() }, SETTINGS);
  t.same(accepted.status?.appliedEngine, ticketEvent().spec.engine, 'the engine spec the children came from');

  // Then an edit that changes the engines and the shard count: refused as a whole.
  const edited = ticketEvent({
    metadata: { generation: 2 },
    spec: { shardCount: 4, engine: { replicas: 5, logLevel: 'debug' } },
    status: { phase: 'OnSale', observedGeneration: 1, appliedEngine: { replicas: 2, logLevel: 'info' } },
  });
  const refused = plan(
    edited,
    { now: NOW, provision: { status: 'refused', reason: 'shard-count-changed', message: 'shard count 4 differs' }, inventory: counts() },
    SETTINGS,
  );
  t.same(applied(refused.actions), [
    'ConfigMap/arena-engine',
    'Deployment/arena-engine',
    'Service/arena-engine-metrics',
    'PodDisruptionBudget/arena-engine',
  ]);
  const deployment = refused.actions.find((a) => a.type === 'apply' && a.object.kind === 'Deployment');
  t.match(deployment, { object: { spec: { replicas: 2 } } }, 'as the accepted spec made it (a Deployment deleted meanwhile comes back)');
  const config = refused.actions.find((a) => a.type === 'apply' && a.object.kind === 'ConfigMap');
  t.match(config, { object: { data: { LOG_LEVEL: 'info' } } }, 'nothing of the refused change');
  t.equal(refused.status?.appliedEngine, undefined, 'the record is left as it was');
  t.match(condition(refused.status, ConditionType.InventoryProvisioned), { reason: 'UnsafeChangeRefused' });
});

t.test('the same refusal again records no second event', async (t) => {
  const status = {
    phase: 'OnSale' as const,
    observedGeneration: 2,
    conditions: [
      {
        type: 'InventoryProvisioned',
        status: 'False' as const,
        reason: 'UnsafeChangeRefused',
        message: 'x',
        lastTransitionTime: '2030-05-01T11:00:00Z',
      },
    ],
  };
  const decided = plan(
    ticketEvent({ metadata: { generation: 2 }, status }),
    { now: NOW, provision: { status: 'refused', reason: 'layout-changed', message: 'layout differs' }, inventory: counts() },
    SETTINGS,
  );
  t.same(decided.events, []);
});

t.test('a refused change does not move the sale window: phase and wake-ups follow the one in force', async (t) => {
  // One edit changes the layout (refused) and moves the close two hours earlier, to before now: the
  // inventory keeps the old close, and engines keep selling until then.
  const edited = ticketEvent({
    metadata: { generation: 2 },
    spec: { sale: { opensAt: '2030-05-01T10:00:00Z', closesAt: '2030-05-01T10:30:00Z' } },
    status: { phase: 'OnSale', observedGeneration: 1, appliedEngine: { replicas: 2, logLevel: 'info' } },
  });
  const refused = { status: 'refused', reason: 'layout-changed', message: 'layout differs' } as const;
  const decided = plan(edited, { now: NOW, provision: refused, inventory: counts() }, SETTINGS);
  t.equal(decided.status?.phase, 'OnSale', 'not Closed: the refused close is not in force');
  t.equal(decided.requeueAfterMs, SETTINGS.refreshIntervalMs, 'counts keep being refreshed');
  t.notOk(
    decided.events.some((e) => e.reason === 'PhaseClosed'),
    'no PhaseClosed event',
  );

  // The same with a child the API server refuses (nothing committed either).
  const rejected = { kind: 'Deployment', name: 'arena-engine', message: 'spec.template: invalid' };
  const alsoRefused = plan(edited, { now: NOW, rejected, inventory: counts() }, SETTINGS);
  t.equal(alsoRefused.status?.phase, 'OnSale');

  // A refused close 5 s from now does not wake the operator then; the accepted one, 5 s away, does.
  const soon = (at: string) =>
    ticketEvent({ metadata: { generation: 2 }, spec: { sale: { opensAt: '2030-05-01T10:00:00Z', closesAt: at } } });
  t.equal(
    plan(soon('2030-05-01T12:00:05Z'), { now: NOW, provision: refused, inventory: counts() }, SETTINGS).requeueAfterMs,
    SETTINGS.refreshIntervalMs,
  );
  const acceptedSoon = counts({ sale: { opensAt: new Date('2030-05-01T10:00:00Z'), closesAt: new Date('2030-05-01T12:00:05Z') } });
  t.equal(plan(edited, { now: NOW, provision: refused, inventory: acceptedSoon }, SETTINGS).requeueAfterMs, 5010);
  t.equal(
    plan(edited, { now: new Date('2030-05-01T12:00:05Z'), provision: refused, inventory: acceptedSoon }, SETTINGS).status?.phase,
    'Closed',
    'and the phase flips at the close in force',
  );

  // A refused later opening does not make an open sale Pending.
  const later = ticketEvent({
    metadata: { generation: 2 },
    spec: { sale: { opensAt: '2030-05-01T20:00:00Z', closesAt: '2030-05-01T22:00:00Z' } },
  });
  t.equal(plan(later, { now: NOW, provision: refused, inventory: counts() }, SETTINGS).status?.phase, 'OnSale');
});

t.test('an invalid spec fails terminally: phase Failed, no requeue, no children', async (t) => {
  const decided = plan(
    ticketEvent(),
    { now: NOW, provision: { status: 'refused', reason: 'invalid', message: 'spec.shardCount: too many' }, inventory: undefined },
    SETTINGS,
  );
  t.equal(decided.status?.phase, 'Failed');
  t.same(decided.actions, []);
  t.equal(decided.requeueAfterMs, undefined);
  t.match(condition(decided.status, ConditionType.InventoryProvisioned), { status: 'False', reason: 'InvalidSpec' });
  t.match(decided.events, [
    { type: 'Warning', reason: 'InvalidSpec' },
    { type: 'Warning', reason: 'PhaseFailed' },
  ]);
});

t.test('an invalid edit of a provisioned event is refused as an unsafe one is: the sale goes on, refreshed', async (t) => {
  const decided = plan(
    ticketEvent({ metadata: { generation: 2 }, status: { phase: 'OnSale', observedGeneration: 1 } }),
    {
      now: NOW,
      provision: { status: 'refused', reason: 'invalid', message: 'layout.sections[0].name: must be a string of at most 200 characters' },
      inventory: counts(),
    },
    SETTINGS,
  );
  t.equal(decided.status?.phase, 'OnSale', 'not Failed: its engines still sell');
  t.match(condition(decided.status, ConditionType.InventoryProvisioned), {
    status: 'False',
    reason: 'InvalidSpec',
    message: /at most 200 characters.*nothing of this change was applied/,
  });
  t.equal(decided.requeueAfterMs, SETTINGS.refreshIntervalMs, 'its counts are still refreshed');
  t.notOk(
    (decided.events ?? []).some((e) => e.reason === 'PhaseFailed'),
    'and no PhaseFailed',
  );
});

t.test('a recreated TicketEvent whose event was archived is refused, not resurrected', async (t) => {
  const decided = plan(
    ticketEvent(),
    {
      now: NOW,
      provision: { status: 'refused', reason: 'archived', message: 'event shows--arena is archived' },
      inventory: counts({ owned: 0 }),
    },
    SETTINGS,
  );
  t.equal(decided.status?.phase, 'Failed');
  t.match(condition(decided.status, ConditionType.InventoryProvisioned), { reason: 'EventArchived' });
  t.notMatch(condition(decided.status, ConditionType.InventoryProvisioned)?.message, /keeps selling/);
});

t.test('a recreated TicketEvent whose event was closed (finalizer removed by hand) is refused too, not shown on sale', async (t) => {
  const decided = plan(
    ticketEvent(),
    {
      now: NOW,
      provision: { status: 'refused', reason: 'closed', message: 'event shows--arena is closed' },
      inventory: counts({ owned: 0 }),
    },
    SETTINGS,
  );
  t.equal(decided.status?.phase, 'Failed', 'not OnSale: no engine serves a closed event');
  t.same(decided.actions, [], 'no engines started for it');
  t.match(condition(decided.status, ConditionType.InventoryProvisioned), {
    status: 'False',
    reason: 'EventClosed',
    message: /^event shows--arena is closed\. Its sale is over and is never reopened; a TicketEvent of another name/,
  });
  t.match(condition(decided.status, ConditionType.Degraded), { status: 'True', reason: 'EventClosed' });
  t.match(condition(decided.status, ConditionType.Ready), { status: 'False', reason: 'EventClosed' });
  t.match(decided.events, [
    { type: 'Warning', reason: 'EventClosed' },
    { type: 'Warning', reason: 'PhaseFailed' },
  ]);
  t.equal(decided.requeueAfterMs, undefined);
});

t.test('safe changes roll out and are announced', async (t) => {
  const decided = plan(
    ticketEvent({ metadata: { generation: 3 }, status: { phase: 'OnSale' } }),
    { now: NOW, provision: { status: 'updated', changed: ['customerLimit', 'saleClosesAt'] }, inventory: counts() },
    SETTINGS,
  );
  t.equal(decided.actions.length, 4);
  t.match(decided.events, [{ type: 'Normal', reason: 'Updated', message: /customerLimit, saleClosesAt/ }]);
  t.equal(decided.status?.observedGeneration, 3);
});

t.test('phase follows the window and sell-out', async (t) => {
  t.equal(phaseOf(undefined, NOW), 'Provisioning');
  t.equal(phaseOf(counts(), new Date('2030-05-01T09:59:59Z')), 'Pending');
  t.equal(phaseOf(counts(), new Date('2030-05-01T10:00:00Z')), 'OnSale');
  t.equal(phaseOf(counts({ available: 0, held: 5, sold: 45 }), NOW), 'OnSale', 'held seats may still come back');
  t.equal(phaseOf(counts({ available: 0, sold: 50 }), NOW), 'SoldOut');
  t.equal(phaseOf(counts(), new Date('2030-05-01T22:00:00Z')), 'Closed');
});

t.test('a pending sale wakes up exactly when it opens', async (t) => {
  const decided = plan(
    ticketEvent(),
    { now: new Date('2030-05-01T09:59:58Z'), provision: { status: 'unchanged' }, inventory: counts() },
    SETTINGS,
  );
  t.equal(decided.status?.phase, 'Pending');
  t.equal(decided.requeueAfterMs, 2010);
  const closed = plan(
    ticketEvent(),
    { now: new Date('2030-05-02T00:00:00Z'), provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }) },
    SETTINGS,
  );
  t.equal(closed.status?.phase, 'Closed');
  t.equal(closed.requeueAfterMs, undefined, 'a closed sale the engines have left, with nothing held, needs no refresh');
  t.match(condition(closed.status, ConditionType.Ready), { status: 'True' }, 'engines may leave once the window is over');
  const closing = (inventory: ReturnType<typeof counts>) =>
    plan(ticketEvent(), { now: new Date('2030-05-02T00:00:00Z'), provision: { status: 'unchanged' }, inventory }, SETTINGS).requeueAfterMs;
  t.equal(closing(counts({ owned: 1 })), SETTINGS.refreshIntervalMs, 'refreshed while an engine still has a shard');
  t.equal(closing(counts({ owned: 0, named: 1 })), undefined, 'not for a shard that names a dead engine, with nothing held');
  t.equal(closing(counts({ owned: 0, held: 4 })), SETTINGS.refreshIntervalMs, 'or a seat is still held');
});

t.test('right after the opening it looks every second until the engines own every shard', async (t) => {
  const at = (iso: string, owned: number) =>
    plan(ticketEvent(), { now: new Date(iso), provision: { status: 'unchanged' }, inventory: counts({ owned }) }, SETTINGS).requeueAfterMs;
  t.equal(at('2030-05-01T10:00:00.010Z', 0), 1000);
  t.equal(at('2030-05-01T10:00:05Z', 2), 1000);
  t.equal(at('2030-05-01T10:00:05Z', 3), SETTINGS.refreshIntervalMs, 'all owned: the usual refresh');
  t.equal(at('2030-05-01T10:01:00Z', 0), SETTINGS.refreshIntervalMs, 'past the opening: the usual refresh (Degraded says why)');
});

t.test('a pending sale is Ready once provisioned: engines claim its shards only when it opens', async (t) => {
  const decided = plan(
    ticketEvent({ status: { phase: 'Pending' } }),
    { now: new Date('2030-05-01T09:00:00Z'), provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }) },
    SETTINGS,
  );
  t.equal(decided.status?.phase, 'Pending');
  t.match(condition(decided.status, ConditionType.ShardsAvailable), {
    status: 'Unknown',
    reason: 'SaleNotOpen',
    message: /when the sale opens at 2030-05-01T10:00:00Z; 0\/3 owned now/,
  });
  t.match(condition(decided.status, ConditionType.Degraded), { status: 'False' });
  t.match(condition(decided.status, ConditionType.Ready), { status: 'True', reason: 'Ready', message: /the sale has not opened yet/ });

  // Not provisioned, or a refused change, still blocks Ready while pending.
  const refused = plan(
    ticketEvent({ metadata: { generation: 2 }, status: { phase: 'Pending', observedGeneration: 1 } }),
    {
      now: new Date('2030-05-01T09:00:00Z'),
      provision: { status: 'refused', reason: 'layout-changed', message: 'layout differs' },
      inventory: counts({ owned: 0 }),
    },
    SETTINGS,
  );
  t.match(condition(refused.status, ConditionType.Ready), { status: 'False', reason: 'UnsafeChangeRefused' });

  // Once on sale, unowned shards count again.
  const open = plan(
    ticketEvent({ status: { phase: 'Pending' } }),
    { now: NOW, provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }) },
    SETTINGS,
  );
  t.match(condition(open.status, ConditionType.ShardsAvailable), { status: 'False', reason: 'ShardsUnowned' });
  t.match(condition(open.status, ConditionType.Ready), { status: 'False' });
});

t.test('a pending sale whose engine pods are not available (as their controller reports) is not Ready', async (t) => {
  const now = new Date('2030-05-01T09:00:00Z');
  const pendingWith = (engines: Observed['engines']) =>
    plan(
      ticketEvent({ status: { phase: 'Pending' } }),
      { now, provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }), ...(engines === undefined ? {} : { engines }) },
      SETTINGS,
    );
  const longAgo = new Date(now.getTime() - 3_600_000);
  const none = pendingWith({ found: true, createdAt: longAgo, report: { available: 0, replicas: 2 } });
  t.equal(none.status?.phase, 'Pending');
  t.match(condition(none.status, ConditionType.ShardsAvailable), {
    status: 'False',
    reason: 'NoEngineAvailable',
    message:
      /no engine pod is available \(0\/2 of Deployment \S+-engine\): nothing would claim the shards when the sale opens at 2030-05-01T10:00:00Z/,
  });
  t.match(condition(none.status, ConditionType.Ready), { status: 'False', reason: 'NoEngineAvailable' });
  t.match(condition(none.status, ConditionType.Degraded), { status: 'False' }, 'pods may be starting: nothing to call a person for yet');

  // Pods its controller cannot create, and why: in a namespace the chart did not prepare, say.
  const cannot = pendingWith({
    found: true,
    createdAt: longAgo,
    report: { available: 0, replicas: 2 },
    failing:
      'pods "arena-engine-5f" is forbidden: error looking up service account shows/sentinel-engine: serviceaccount "sentinel-engine" not found',
  });
  t.match(condition(cannot.status, ConditionType.ShardsAvailable), {
    reason: 'NoEngineAvailable',
    message: /0\/2 of Deployment \S+-engine; its pods cannot be created: .*serviceaccount "sentinel-engine" not found\)/,
  });

  const missing = pendingWith({ found: false });
  t.match(condition(missing.status, ConditionType.ShardsAvailable), {
    status: 'False',
    reason: 'NoEngineAvailable',
    message: /the engine Deployment \S+-engine does not exist yet/,
  });
  t.match(condition(missing.status, ConditionType.Ready), { status: 'False' }, 'a new event is not Ready before its Deployment is there');

  const young = pendingWith({ found: true, createdAt: new Date(now.getTime() - 2000), report: undefined });
  t.match(condition(young.status, ConditionType.ShardsAvailable), {
    status: 'False',
    reason: 'NoEngineAvailable',
    message: /no controller has reported on the engine Deployment \S+-engine yet/,
  });
  t.match(condition(young.status, ConditionType.Ready), { status: 'False' }, 'a controller may report any moment');
  t.equal(young.requeueAfterMs, 8010, 'it looks again when the grace for a report ends');

  const unreadable = pendingWith({ unknown: 'deployments.apps is forbidden' });
  t.match(condition(unreadable.status, ConditionType.ShardsAvailable), {
    status: 'Unknown',
    reason: 'EngineAvailabilityUnknown',
    message: /cannot read the engine Deployment \S+-engine: deployments.apps is forbidden/,
  });
  t.match(
    condition(unreadable.status, ConditionType.Ready),
    { status: 'False', reason: 'EngineAvailabilityUnknown' },
    'not known to have an engine: not Ready',
  );
  t.match(condition(unreadable.status, ConditionType.Degraded), { status: 'False' }, 'an observation that failed degrades nothing');

  for (const [engines, what] of [
    [{ found: true, createdAt: longAgo, report: { available: 1, replicas: 2 } }, 'one engine pod available'],
    [{ found: true, createdAt: longAgo, report: undefined }, 'no controller reported on it in 10 s: none runs here'],
    [undefined, 'not looked at'],
  ] as const) {
    const decided = pendingWith(engines);
    t.match(condition(decided.status, ConditionType.ShardsAvailable), { status: 'Unknown', reason: 'SaleNotOpen' }, what);
    t.match(condition(decided.status, ConditionType.Ready), { status: 'True' }, what);
  }
});

t.test('a stalled rollout of the engine Deployment degrades the event (and so it is not Ready) until the close', async (t) => {
  const longAgo = new Date(NOW.getTime() - 3_600_000);
  const stalled: Observed['engines'] = {
    found: true,
    createdAt: longAgo,
    report: { available: 2, replicas: 2 },
    stalled: 'ReplicaSet "arena-engine-7d9" has timed out progressing.',
  };
  const onSale = (engines: Observed['engines'], status: Parameters<typeof ticketEvent>[0] = { status: { phase: 'OnSale' } }) =>
    plan(
      ticketEvent(status),
      { now: NOW, provision: { status: 'unchanged' }, inventory: counts(), ...(engines ? { engines } : {}) },
      SETTINGS,
    );

  const stuck = onSale(stalled);
  const message =
    /the rollout of the engine Deployment \S+-engine is not progressing: ReplicaSet "arena-engine-7d9" has timed out progressing/;
  t.match(condition(stuck.status, ConditionType.Degraded), { status: 'True', reason: 'EngineRolloutStalled', message });
  t.match(
    condition(stuck.status, ConditionType.Ready),
    { status: 'False', reason: 'EngineRolloutStalled' },
    'the spec asked for is not in force',
  );
  t.match(condition(stuck.status, ConditionType.ShardsAvailable), { status: 'True' }, 'the old engines still own every shard');
  t.same(
    stuck.events.map((e) => [e.type, e.reason]),
    [['Warning', 'EngineRolloutStalled']],
  );
  const again = onSale(stalled, {
    status: {
      phase: 'OnSale',
      conditions: [{ type: 'Degraded', status: 'True', reason: 'EngineRolloutStalled', message: 'x', lastTransitionTime: '' }],
    },
  });
  t.same(again.events, [], 'warned once, when it becomes so');

  const unreadable = onSale(
    { unknown: 'connect ECONNREFUSED' },
    {
      status: {
        phase: 'OnSale',
        conditions: [
          {
            type: 'Degraded',
            status: 'True',
            reason: 'EngineRolloutStalled',
            message: 'the rollout … is not progressing',
            lastTransitionTime: '',
          },
        ],
      },
    },
  );
  t.match(
    condition(unreadable.status, ConditionType.Degraded),
    { status: 'True', reason: 'EngineRolloutStalled', message: 'the rollout … is not progressing' },
    'a stall is not over because the Deployment cannot be read',
  );
  t.match(condition(unreadable.status, ConditionType.Ready), { status: 'False' });
  t.same(unreadable.events, []);
  t.match(condition(onSale({ unknown: 'timeout' }).status, ConditionType.Ready), { status: 'True' }, 'nor does a failed read make one');

  const moving = onSale({ ...stalled, stalled: undefined } as Observed['engines']);
  t.match(condition(moving.status, ConditionType.Ready), { status: 'True' }, 'a rollout in progress, or done, is no reason');

  const unowned = plan(
    ticketEvent({ status: { phase: 'OnSale' } }),
    { now: NOW, provision: { status: 'unchanged' }, inventory: counts({ owned: 1 }), engines: stalled },
    SETTINGS,
  );
  t.match(condition(unowned.status, ConditionType.Degraded), { reason: 'ShardsUnavailable' }, 'unowned shards are said first');

  const pending = plan(
    ticketEvent({ status: { phase: 'Pending' } }),
    { now: new Date('2030-05-01T09:00:00Z'), provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }), engines: stalled },
    SETTINGS,
  );
  t.match(condition(pending.status, ConditionType.Degraded), { status: 'True', reason: 'EngineRolloutStalled' }, 'also before the opening');

  const closed = plan(
    ticketEvent({ status: { phase: 'Closed' } }),
    { now: new Date('2030-05-01T23:00:00Z'), provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }), engines: stalled },
    SETTINGS,
  );
  t.match(condition(closed.status, ConditionType.Degraded), { status: 'False' }, 'after the close no engine is needed');
});

t.test('no engines asked for: ShardsAvailable says so', async (t) => {
  const decided = plan(
    ticketEvent({ spec: { engine: { replicas: 0, logLevel: 'info' } } }),
    { now: NOW, provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }) },
    SETTINGS,
  );
  t.match(condition(decided.status, ConditionType.ShardsAvailable), { status: 'False', reason: 'NoEngines' });
  const pending = plan(
    ticketEvent({ spec: { engine: { replicas: 0, logLevel: 'info' } } }),
    { now: new Date('2030-05-01T09:00:00Z'), provision: { status: 'unchanged' }, inventory: counts({ owned: 0 }) },
    SETTINGS,
  );
  t.equal(pending.status?.phase, 'Pending');
  t.match(condition(pending.status, ConditionType.ShardsAvailable), { status: 'False', reason: 'NoEngines' });
  t.match(condition(pending.status, ConditionType.Ready), { status: 'False' }, 'nothing would serve it when it opens: not Ready');
});

t.test('deletion: close, wait for engines to drain, then archive and let go', async (t) => {
  const deleting = ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T12:00:00Z' }, status: { phase: 'OnSale' } });
  const closing = plan(deleting, { now: new Date('2030-05-01T12:00:00Z'), inventory: counts({ owned: 0, sold: 7 }) }, SETTINGS);
  t.same(applied(closing.actions), ['close-sale'], 'the close comes alone, even with no shard owned: counts read before it prove nothing');
  t.equal(closing.status?.drainingSince, '2030-05-01T12:00:00.000Z', 'when the close was done is recorded');
  t.match(closing.events, [{ reason: 'Closing' }]);
  t.equal(closing.requeueAfterMs, SETTINGS.drainPollMs);

  const closed = ticketEvent({
    metadata: { deletionTimestamp: '2030-05-01T12:00:00Z' },
    status: { phase: 'Closed', drainingSince: '2030-05-01T12:00:00.000Z' },
  });
  const waiting = plan(closed, { now: new Date('2030-05-01T12:00:10Z'), inventory: counts({ owned: 2, sold: 7 }) }, SETTINGS);
  t.same(applied(waiting.actions), ['close-sale'], 'never archives while an engine still owns a shard');
  t.equal(waiting.status?.phase, 'Closed');
  t.match(condition(waiting.status, ConditionType.Ready), {
    status: 'False',
    reason: 'Draining',
    message: /waiting until 2030-05-01T12:01:00Z for engines to release 2 of 3 shards/,
  });
  t.equal(waiting.requeueAfterMs, SETTINGS.drainPollMs);
  t.same(waiting.events, [], 'Closing is announced once');
  const paused = plan(closed, { now: new Date('2030-05-01T12:00:10Z'), inventory: counts({ owned: 0, named: 1, sold: 7 }) }, SETTINGS);
  t.same(applied(paused.actions), ['close-sale'], 'nor while a shard names an engine whose heartbeat ran out: it may only be paused');
  t.match(condition(paused.status, ConditionType.Ready), { message: /for engines to release 1 of 3 shards/ });

  const ending = plan(closed, { now: new Date('2030-05-01T12:00:15Z'), inventory: counts({ owned: 0, sold: 7, held: 3 }) }, SETTINGS);
  t.same(applied(ending.actions), ['close-sale'], 'nor while seats are still held: the engines end those holds');
  t.match(condition(ending.status, ConditionType.Ready), {
    message: /waiting until 2030-05-01T12:01:00Z for engines to end the holds on 3 seats and places before archiving/,
  });

  const drained = plan(closed, { now: new Date('2030-05-01T12:00:20Z'), inventory: counts({ owned: 0, sold: 7 }) }, SETTINGS);
  t.same(applied(drained.actions), ['close-sale', 'archive', 'remove-finalizer']);
  t.equal(drained.status, undefined, 'no status write on an object about to vanish');
  t.same(drained.events, []);

  const timedOut = plan(closed, { now: new Date('2030-05-01T12:01:00Z'), inventory: counts({ owned: 1, held: 2 }) }, SETTINGS);
  t.same(applied(timedOut.actions), ['close-sale', 'archive', 'remove-finalizer']);
  t.match(timedOut.events, [
    { type: 'Warning', reason: 'DrainTimedOut', message: /1 of 3 shards were still owned and 2 seats and places still held/ },
  ]);
});

t.test('deletion: an operator down for longer than the drain timeout still gives engines a full drain window', async (t) => {
  // Deleted at 12:00, the operator back only at 12:05: the window counts from the close it does now.
  const deleting = ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T12:00:00Z' }, status: { phase: 'OnSale' } });
  const back = new Date('2030-05-01T12:05:00Z');
  const closing = plan(deleting, { now: back, inventory: counts({ owned: 2 }) }, SETTINGS);
  t.same(applied(closing.actions), ['close-sale'], 'not archived in the reconcile that closes the sale');
  t.equal(closing.status?.drainingSince, '2030-05-01T12:05:00.000Z');
  const closed = ticketEvent({
    metadata: { deletionTimestamp: '2030-05-01T12:00:00Z' },
    status: { phase: 'Closed', drainingSince: closing.status?.drainingSince ?? '' },
  });
  const stillDraining = plan(
    closed,
    { now: new Date(back.getTime() + SETTINGS.drainTimeoutMs - 1), inventory: counts({ owned: 2 }) },
    SETTINGS,
  );
  t.same(applied(stillDraining.actions), ['close-sale'], 'the whole window after the close is waited for');
  const after = plan(closed, { now: new Date(back.getTime() + SETTINGS.drainTimeoutMs), inventory: counts({ owned: 2 }) }, SETTINGS);
  t.same(applied(after.actions), ['close-sale', 'archive', 'remove-finalizer']);
});

t.test('deletion never lets go while the outbox has unpublished rows, even past the drain timeout', async (t) => {
  const closed = ticketEvent({
    metadata: { deletionTimestamp: '2030-05-01T12:00:00Z' },
    status: { phase: 'Closed', drainingSince: '2030-05-01T12:00:00.000Z' },
  });
  const waiting = plan(closed, { now: new Date('2030-05-01T12:00:10Z'), inventory: counts({ owned: 0 }), unpublished: 4 }, SETTINGS);
  t.same(applied(waiting.actions), ['close-sale']);
  t.match(condition(waiting.status, ConditionType.Ready), {
    status: 'False',
    reason: 'Draining',
    message: /waiting for 4 reservations not yet published to Kafka/,
  });
  t.match(
    condition(waiting.status, ConditionType.Degraded),
    { status: 'False', reason: 'Draining' },
    'within the drain window this is simply draining',
  );
  t.same(waiting.events, []);

  const late = new Date('2030-05-01T12:10:00Z');
  const stuck = plan(closed, { now: late, inventory: counts({ owned: 1 }), unpublished: 4 }, SETTINGS);
  t.same(applied(stuck.actions), ['close-sale'], 'neither archived nor let go, not even with a shard timed out');
  t.equal(stuck.requeueAfterMs, SETTINGS.drainPollMs);
  t.match(condition(stuck.status, ConditionType.Degraded), {
    status: 'True',
    reason: 'OutboxNotDrained',
    message: /4 reservations .* still not published to Kafka.*removing the finalizer sentinel\.dev\/inventory by hand/,
  });
  t.match(stuck.events, [{ type: 'Warning', reason: 'OutboxNotDrained' }]);

  const reported = ticketEvent({
    metadata: { deletionTimestamp: '2030-05-01T12:00:00Z' },
    status: {
      phase: 'Closed',
      drainingSince: '2030-05-01T12:00:00.000Z',
      conditions: [
        { type: 'Degraded', status: 'True', reason: 'OutboxNotDrained', message: 'x', lastTransitionTime: '2030-05-01T12:01:00Z' },
      ],
    },
  });
  t.same(plan(reported, { now: late, inventory: counts({ owned: 0 }), unpublished: 4 }, SETTINGS).events, [], 'warned once');

  const published = plan(reported, { now: late, inventory: counts({ owned: 0 }), unpublished: 0 }, SETTINGS);
  t.same(applied(published.actions), ['close-sale', 'archive', 'remove-finalizer']);
});

t.test('deletion refreshes Degraded and ShardsAvailable at every round: a failure reported during the drain does not stay', async (t) => {
  // A deleting event that hit a transient error earlier in its drain (reportFailure wrote
  // Degraded=True), with ShardsAvailable as the sale left it.
  const status = {
    phase: 'Closed' as const,
    drainingSince: new Date(NOW.getTime() - 5_000).toISOString(),
    conditions: [
      {
        type: 'Ready',
        status: 'False' as const,
        reason: 'ReconcileError',
        message: 'will retry: postgres down',
        lastTransitionTime: '2030-05-01T11:59:00Z',
      },
      {
        type: 'ShardsAvailable',
        status: 'True' as const,
        reason: 'AllShardsOwned',
        message: '3/3 shards owned by engines',
        lastTransitionTime: '2030-05-01T11:00:00Z',
      },
      {
        type: 'Degraded',
        status: 'True' as const,
        reason: 'ReconcileError',
        message: 'will retry: postgres down',
        lastTransitionTime: '2030-05-01T11:59:00Z',
      },
    ],
  };
  const object = ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T11:58:00Z' }, status });
  // Postgres is back; an engine is still releasing a shard (the drain goes on), a reservation is not published yet.
  const decided = plan(object, { now: NOW, inventory: counts({ owned: 1, named: 1 }), unpublished: 1 }, SETTINGS);
  t.same(applied(decided.actions), ['close-sale'], 'still draining');
  const next = applyStatusPatch(object.status, decided.status!, NOW, 1);
  t.same(
    next.conditions?.map((c) => [c.type, c.status, c.reason]),
    [
      ['Ready', 'False', 'Draining'],
      ['ShardsAvailable', 'False', 'SaleClosing'],
      ['Degraded', 'False', 'Draining'],
    ],
    'the ReconcileError is cleared; the shards say the sale is closing',
  );
  t.match(
    condition(decided.status, ConditionType.ShardsAvailable)?.message,
    /closed for deletion; engines are releasing its shards: 1\/3 still held \(1 by a live engine\)/,
  );

  const closing = plan(
    ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T11:58:00Z' }, status: { ...status, drainingSince: undefined } }),
    { now: NOW, inventory: counts({ owned: 3 }) },
    SETTINGS,
  );
  t.same(applied(closing.actions), ['close-sale'], 'the round that closes the sale');
  t.match(condition(closing.status, ConditionType.ShardsAvailable), { status: 'False', reason: 'SaleClosing', message: /3\/3 still held/ });
  t.match(condition(closing.status, ConditionType.Degraded), { status: 'False', reason: 'Draining' });

  const released = plan(object, { now: NOW, inventory: counts({ owned: 0 }), unpublished: 2 }, SETTINGS);
  t.match(condition(released.status, ConditionType.ShardsAvailable), {
    reason: 'SaleClosing',
    message: /engines have released all 3 shards/,
  });

  const stuck = plan(
    object,
    { now: new Date(NOW.getTime() + SETTINGS.drainTimeoutMs), inventory: counts({ owned: 0 }), unpublished: 2 },
    SETTINGS,
  );
  t.match(
    condition(stuck.status, ConditionType.Degraded),
    { status: 'True', reason: 'OutboxNotDrained' },
    'past the window, the outbox is what needs a person',
  );
  t.equal(stuck.status?.conditions?.filter((c) => c.type === ConditionType.Degraded).length, 1, 'one Degraded condition');
});

t.test('a child the API server refuses: nothing applied; a provisioned sale keeps its phase, a new one fails', async (t) => {
  const rejected = {
    kind: 'Deployment',
    name: 'arena-engine',
    message:
      'Deployment.apps "arena-engine" is invalid: spec.template.spec.containers[0].envFrom[0].configMapRef.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of …',
  };
  const live = plan(
    ticketEvent({ metadata: { generation: 2 }, status: { phase: 'OnSale', observedGeneration: 1 } }),
    { now: NOW, rejected, inventory: counts() },
    SETTINGS,
  );
  t.same(live.actions, [], 'not half-applied');
  t.equal(live.status?.phase, 'OnSale');
  t.equal(live.status?.observedGeneration, 2);
  t.match(condition(live.status, ConditionType.InventoryProvisioned), {
    status: 'False',
    reason: 'ChildRejected',
    message:
      /^spec\.engine\.configMapRef: the API server refuses the Deployment arena-engine .*Bad_Name.*nothing of this change was applied/,
  });
  t.match(condition(live.status, ConditionType.Degraded), { status: 'True', reason: 'ChildRejected' });
  t.match(condition(live.status, ConditionType.Ready), { status: 'False', reason: 'ChildRejected' });
  t.match(live.events, [{ type: 'Warning', reason: 'ChildRejected' }]);
  t.equal(live.requeueAfterMs, SETTINGS.refreshIntervalMs, 'counts and phase keep being refreshed');

  const fresh = plan(ticketEvent(), { now: NOW, rejected, inventory: undefined }, SETTINGS);
  t.equal(fresh.status?.phase, 'Failed');
  t.same(fresh.actions, []);
});

t.test('deletion of a never-provisioned event just lets go; without our finalizer it does nothing', async (t) => {
  const deleting = ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T12:00:00Z' } });
  t.same(applied(plan(deleting, { now: NOW, inventory: undefined }, SETTINGS).actions), ['remove-finalizer']);
  const foreign = ticketEvent({ metadata: { deletionTimestamp: '2030-05-01T12:00:00Z', finalizers: ['someone.else/x'] } });
  const decided = plan(foreign, { now: NOW, inventory: counts() }, SETTINGS);
  t.same(decided.actions, []);
  t.equal(decided.status, undefined);
});

t.test('plan is pure: same input, same output, input untouched', async (t) => {
  const event = ticketEvent({ status: { phase: 'Pending' } });
  const frozen = JSON.stringify(event);
  const a = plan(event, { now: NOW, provision: { status: 'unchanged' }, inventory: counts() }, SETTINGS);
  const b = plan(event, { now: NOW, provision: { status: 'unchanged' }, inventory: counts() }, SETTINGS);
  t.same(a, b);
  t.equal(JSON.stringify(event), frozen);
});
