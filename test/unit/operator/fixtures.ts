/** TicketEvents and inventory snapshots for operator unit tests. */
import { DEFAULT_ENGINE } from '../../../src/operator/children.js';
import type { EventInventory, SaleWindow } from '../../../src/operator/inventory-port.js';
import type { PlanSettings } from '../../../src/operator/plan.js';
import { FINALIZER, type TicketEventObject } from '../../../src/operator/types.js';

export const NOW = new Date('2030-05-01T12:00:00Z');

export const SETTINGS: PlanSettings = { engine: DEFAULT_ENGINE, refreshIntervalMs: 10_000, drainTimeoutMs: 60_000, drainPollMs: 1_000 };

/** A TicketEvent on sale at NOW (defaults applied, as the API server returns it). */
export function ticketEvent(
  overrides: {
    spec?: Partial<TicketEventObject['spec']>;
    metadata?: Partial<TicketEventObject['metadata']>;
    status?: TicketEventObject['status'];
  } = {},
): TicketEventObject {
  return {
    apiVersion: 'sentinel.dev/v1alpha1',
    kind: 'TicketEvent',
    metadata: {
      name: 'arena',
      namespace: 'shows',
      uid: 'uid-1',
      generation: 1,
      resourceVersion: '10',
      finalizers: [FINALIZER],
      ...overrides.metadata,
    },
    spec: {
      displayName: 'Arena night',
      sale: { opensAt: '2030-05-01T10:00:00Z', closesAt: '2030-05-01T22:00:00Z' },
      layout: {
        sections: [
          {
            id: 'A',
            rows: [
              { id: '1', seats: 10 },
              { id: '2', seats: 10 },
            ],
          },
        ],
        pools: [{ id: 'GA', capacity: 30 }],
      },
      shardCount: 3,
      holdTtlSeconds: 600,
      customerLimit: 6,
      admissionRate: 1000,
      engine: { replicas: 2, logLevel: 'info' },
      ...overrides.spec,
    },
    ...(overrides.status === undefined ? {} : { status: overrides.status }),
  };
}

/** The sale window of `ticketEvent()`, as the inventory holds it once provisioned. */
export const SALE: SaleWindow = { opensAt: new Date('2030-05-01T10:00:00Z'), closesAt: new Date('2030-05-01T22:00:00Z') };

/** The committed inventory of `ticketEvent()` (its sale window unless `sale` says otherwise). */
export function counts(
  overrides: Partial<Omit<EventInventory, 'shards'>> & { owned?: number; desired?: number; named?: number } = {},
): EventInventory {
  const { owned = 3, desired = 3, named = owned, ...rest } = overrides;
  return { total: 50, available: 50, held: 0, sold: 0, sale: SALE, ...rest, shards: { desired, owned, named } };
}
