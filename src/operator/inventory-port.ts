/**
 * The inventory operations the operator needs, as a port: Postgres in production (the engine's
 * provisioning contract, `src/engine/provision.ts`), a fake in unit tests.
 */
import type pg from 'pg';
import {
  archiveEvent,
  closeEvent,
  inventoryCounts,
  provisionEvent,
  unpublishedOutboxRows,
  type EventSpec,
  type InventoryCounts,
  type ProvisionOutcome,
  type SaleWindow,
} from '../engine/provision.js';

/**
 * An event's committed inventory, as the operator plans with it: counts, shard ownership, and the
 * sale window in force — the last *accepted* one: an edit the inventory refuses (or a child the API
 * server refuses) leaves it as it was, and the phase must not follow the refused spec's window.
 */
export type EventInventory = InventoryCounts;
export type { SaleWindow };

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
  return {
    provision: (spec) => provisionEvent(pool, spec),
    counts: (eventId) => inventoryCounts(pool, eventId),
    unpublished: (eventId) => unpublishedOutboxRows(pool, eventId),
    close: (eventId) => closeEvent(pool, eventId),
    archive: (eventId) => archiveEvent(pool, eventId),
  };
}
