/**
 * The inventory operations the operator needs, as a port: Postgres in production (the engine's
 * provisioning contract, `src/engine/provision.ts`), a fake in unit tests.
 */
import type pg from 'pg';
import { InventoryStore } from '../adapters/postgres/inventory-store.js';
import {
  archiveEvent,
  closeEvent,
  inventoryCounts,
  provisionEvent,
  unpublishedOutboxRows,
  type EventSpec,
  type InventoryCounts,
  type ProvisionOutcome,
} from '../engine/provision.js';

/** A sale window, as the inventory holds it. */
export interface SaleWindow {
  readonly opensAt: Date;
  readonly closesAt: Date;
}

/**
 * An event's committed inventory, as the operator plans with it: counts, shard ownership, and the
 * sale window in force. That window is the events row's — the one engines claim shards by and the
 * ingress sells by — so it is the last *accepted* one: an edit the inventory refuses (or a child the
 * API server refuses) leaves it as it was, and the phase must not follow the refused spec's window.
 */
export interface EventInventory extends InventoryCounts {
  readonly sale: SaleWindow;
}

/** What the reconciler does to an event's inventory. Every operation is idempotent. */
export interface InventoryPort {
  provision(spec: EventSpec): Promise<ProvisionOutcome>;
  counts(eventId: string): Promise<EventInventory | undefined>;
  /** The event's outbox rows not yet published to Kafka (any topic): deletion waits for 0. */
  unpublished(eventId: string): Promise<number>;
  close(eventId: string): Promise<void>;
  archive(eventId: string): Promise<{ archivedReservations: number }>;
}

/** The inventory in Postgres. */
export function postgresInventory(pool: pg.Pool): InventoryPort {
  const store = new InventoryStore(pool);
  return {
    provision: (spec) => provisionEvent(pool, spec),
    async counts(eventId) {
      const counted = await inventoryCounts(pool, eventId);
      // Events rows are never deleted (archived at most), so the second read finds the first's row.
      const event = counted === undefined ? undefined : await store.getEvent(eventId);
      if (counted === undefined || event === undefined) return undefined;
      return { ...counted, sale: { opensAt: event.saleOpensAt, closesAt: event.saleClosesAt } };
    },
    unpublished: (eventId) => unpublishedOutboxRows(pool, eventId),
    close: (eventId) => closeEvent(pool, eventId),
    archive: (eventId) => archiveEvent(pool, eventId),
  };
}
