/** An event as the engine reads it from Postgres, for the shard-host tests (one shard, on sale). */
import type { ShardRows, StoredEvent } from '../../src/adapters/postgres/inventory-store.js';

export function storedEvent(overrides: Partial<StoredEvent> & Pick<StoredEvent, 'id' | 'layout'>): StoredEvent {
  return {
    displayName: overrides.id,
    layoutHash: `${overrides.id}-layout`,
    shardCount: 1,
    holdTtlMs: 60_000,
    customerLimit: 8,
    admissionRate: 100,
    saleOpensAt: new Date(0),
    saleClosesAt: new Date(Date.now() + 3_600_000),
    status: 'open',
    version: 1,
    ...overrides,
  };
}

/** A shard with nothing in Postgres yet. */
export const NO_ROWS: ShardRows = { seats: [], pools: [], liveHolds: [], reservedByCustomer: [], idempotency: [], endedHolds: [] };
