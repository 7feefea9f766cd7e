import t from 'tap';
import type { TicketEventStatus } from '../../../src/operator/api/v1alpha1.js';
import { applyStatusPatch, ConditionType, sameStatus, setCondition } from '../../../src/operator/conditions.js';
import { KubernetesConflictError } from '../../../src/operator/kube-errors.js';
import type { KubeGateway } from '../../../src/operator/kube-gateway.js';
import { writeStatus } from '../../../src/operator/status-writer.js';
import type { TicketEventObject } from '../../../src/operator/types.js';
import { NOW, ticketEvent } from './fixtures.js';

const LATER = new Date(NOW.getTime() + 60_000);

t.test('setCondition keeps lastTransitionTime unless the status flips', async (t) => {
  const first = setCondition(undefined, { type: ConditionType.Ready, status: 'False', reason: 'ShardsUnowned', message: '0/3' }, NOW, 1);
  t.equal(first[0]?.lastTransitionTime, '2030-05-01T12:00:00Z');
  const sameStatusNewReason = setCondition(
    first,
    { type: ConditionType.Ready, status: 'False', reason: 'Draining', message: 'x' },
    LATER,
    2,
  );
  t.equal(sameStatusNewReason[0]?.lastTransitionTime, '2030-05-01T12:00:00Z', 'reason alone is not a transition');
  t.equal(sameStatusNewReason[0]?.observedGeneration, 2);
  const flipped = setCondition(
    sameStatusNewReason,
    { type: ConditionType.Ready, status: 'True', reason: 'Ready', message: 'ok' },
    LATER,
    2,
  );
  t.equal(flipped[0]?.lastTransitionTime, '2030-05-01T12:01:00Z');
  t.equal(first.length, 1, 'inputs are not mutated');
});

t.test('conditions are kept in a stable order', async (t) => {
  let list = setCondition(undefined, { type: ConditionType.Degraded, status: 'False', reason: 'AsExpected', message: '' }, NOW, 1);
  list = setCondition(list, { type: ConditionType.InventoryProvisioned, status: 'True', reason: 'Provisioned', message: '' }, NOW, 1);
  list = setCondition(list, { type: ConditionType.Ready, status: 'True', reason: 'Ready', message: '' }, NOW, 1);
  t.same(
    list.map((c) => c.type),
    ['Ready', 'InventoryProvisioned', 'Degraded'],
  );
});

t.test('applyStatusPatch folds onto a copy and fills the printer summary', async (t) => {
  const before: TicketEventStatus = { phase: 'Provisioning', eventId: 'shows--arena' };
  const after = applyStatusPatch(
    before,
    { phase: 'OnSale', seats: { total: 50, available: 40, held: 3, sold: 7 }, shards: { desired: 3, ready: 2 } },
    NOW,
    1,
  );
  t.same(before, { phase: 'Provisioning', eventId: 'shows--arena' });
  t.same(after.summary, { sold: '7/50', shards: '2/3' });
  t.equal(after.eventId, 'shows--arena', 'absent fields are left as they are');
  t.ok(sameStatus(after, applyStatusPatch(after, { phase: 'OnSale' }, LATER, 1)), 'an idempotent patch changes nothing');
  t.notOk(sameStatus(after, applyStatusPatch(after, { phase: 'SoldOut' }, LATER, 1)));
});

/** A gateway that stores one object and can be told to conflict. */
function fakeGateway(
  object: TicketEventObject,
  conflicts: number,
): KubeGateway & { writes: TicketEventStatus[]; stored: TicketEventObject } {
  let remaining = conflicts;
  const gateway = {
    writes: [] as TicketEventStatus[],
    stored: object,
    async getTicketEvent() {
      return gateway.stored;
    },
    async replaceStatus(current: TicketEventObject, status: TicketEventStatus) {
      if (current.metadata.resourceVersion !== gateway.stored.metadata.resourceVersion || remaining-- > 0) {
        // Someone else wrote meanwhile: bump the version, as the API server would.
        gateway.stored = {
          ...gateway.stored,
          metadata: { ...gateway.stored.metadata, resourceVersion: String(Number(gateway.stored.metadata.resourceVersion) + 1) },
        };
        throw new KubernetesConflictError('conflict');
      }
      gateway.writes.push(status);
      gateway.stored = {
        ...current,
        status,
        metadata: { ...current.metadata, resourceVersion: String(Number(current.metadata.resourceVersion) + 1) },
      };
      return gateway.stored;
    },
    async setFinalizers() {
      return undefined;
    },
    async apply() {},
    async ownersOf() {
      return undefined;
    },
    async recordEvent() {},
    async engineAvailability() {
      return { found: true as const, createdAt: undefined, report: undefined };
    },
  };
  return gateway;
}

t.test('writeStatus writes only when something changed', async (t) => {
  const gateway = fakeGateway(ticketEvent(), 0);
  const first = await writeStatus(gateway, gateway.stored, { phase: 'OnSale', observedGeneration: 1 }, NOW);
  t.equal(first.changed, true);
  const second = await writeStatus(gateway, first.object, { phase: 'OnSale', observedGeneration: 1 }, LATER);
  t.equal(second.changed, false);
  t.equal(gateway.writes.length, 1);
});

t.test('writeStatus retries a conflict on a fresh read', async (t) => {
  const gateway = fakeGateway(ticketEvent(), 2);
  const result = await writeStatus(gateway, gateway.stored, { phase: 'OnSale' }, NOW);
  t.equal(result.changed, true);
  t.equal(gateway.writes.length, 1);
  t.equal(result.object.status?.phase, 'OnSale');
});

t.test('writeStatus gives up after repeated conflicts with a retryable error', async (t) => {
  const gateway = fakeGateway(ticketEvent(), 100);
  await t.rejects(writeStatus(gateway, gateway.stored, { phase: 'OnSale' }, NOW), { code: 'kubernetes_conflict', retryable: true });
});
