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
} from '../engine/provision.js';

/** What the reconciler does to an event's inventory. Every operation is idempotent. */
export interface InventoryPort {
  provision(spec: EventSpec): Promise<ProvisionOutcome>;
  counts(eventId: string): Promise<InventoryCounts | undefined>;
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
