/** Shard hosts and deciders as the shard-host tests make them: shard 0 of one event, the settings they share. */
import type { ShardRows, StoredEvent } from '../../src/adapters/postgres/inventory-store.js';
import type { ShardChange } from '../../src/domain/commands.js';
import { EngineMetrics } from '../../src/engine/metrics.js';
import { createShardDecider, type EngineShardDecider } from '../../src/engine/shard-decider.js';
import { ShardHost, type ShardHostOptions } from '../../src/engine/shard-host.js';
import { silentLogger } from '../../src/log.js';
import { NO_ROWS } from './stored-event.js';

/** The real decider of shard 0 of `event`: nothing in Postgres unless `rows`, a 60 s idempotency window, faults thrown. */
export function testDecider(
  event: StoredEvent,
  options: { rows?: ShardRows; now?: () => number; persistExpired?: (changes: readonly ShardChange[]) => void } = {},
): EngineShardDecider {
  return createShardDecider({
    event,
    shard: 0,
    rows: options.rows ?? NO_ROWS,
    now: options.now ?? Date.now,
    idempotencyTtlMs: 60_000,
    persistExpired: options.persistExpired ?? (() => undefined),
    onFault: (error) => {
      throw error;
    },
  });
}

/**
 * A host of shard 0 at epoch 1 (not started): its lease always held, batches of at most 64 in 2 ms
 * windows, silent, on the wall clock — unless `options` says otherwise.
 */
export function testShardHost(
  options: Pick<ShardHostOptions, 'eventId' | 'rules' | 'decider' | 'store' | 'nc'> & Partial<ShardHostOptions>,
): ShardHost {
  return new ShardHost({
    shard: 0,
    epoch: 1,
    leaseHeld: () => true,
    topic: 'unused',
    batchWindowMs: 2,
    batchMax: 64,
    log: silentLogger,
    metrics: new EngineMetrics(),
    now: Date.now,
    onStopped: () => undefined,
    onOutbox: () => undefined,
    ...options,
  });
}
