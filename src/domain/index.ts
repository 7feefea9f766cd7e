/** The pure inventory core: layout, seat → shard mapping, the shard inventory and its actor. */
export type * from './commands.js';
export * from './layout.js';
export * from './shard-map.js';
export * from './shard-settings.js';
export { fingerprintOf, idempotencyScope, type IdempotencyRecord, type RememberedResult } from './idempotency.js';
export { findBestPlacement, leavesOrphan, type SeatGrid } from './best-available.js';
export * from './customer.js';
export * from './snapshot.js';
export * from './shard-inventory.js';
export * from './shard-machine.js';
