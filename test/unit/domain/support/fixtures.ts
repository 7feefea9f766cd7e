/** Builders shared by the domain tests. */
import {
  resolveShardSettings,
  shardMap,
  ShardInventory,
  validateLayout,
  type Layout,
  type NewId,
  type ShardCommand,
  type ShardMap,
  type ShardSettings,
} from '../../../../src/domain/index.js';

/** Validates a layout or throws with its errors. */
export function layoutOf(input: unknown): Layout {
  const validation = validateLayout(input);
  if (!validation.ok) throw new Error(`bad test layout: ${JSON.stringify(validation.errors)}`);
  return validation.layout;
}

/** Rows `1..rows` of `seats` seats each. */
export function rows(count: number, seats: number): { id: string; seats: number }[] {
  return Array.from({ length: count }, (_, i) => ({ id: String(i + 1), seats }));
}

/** Deterministic ids: hold-1, hold-2, …, res-1, … (after `issued` ids already given out). */
export function counterIds(issued: { hold: number; reservation: number } = { hold: 0, reservation: 0 }): NewId {
  const next = { ...issued };
  return (kind) => (kind === 'hold' ? `hold-${++next.hold}` : `res-${++next.reservation}`);
}

export interface Fixture {
  readonly map: ShardMap;
  readonly inventory: ShardInventory;
  readonly settings: ShardSettings;
}

/** An inventory of shard `shard` of `layout` mapped onto `shards` shards. */
export function fixture(
  layout: unknown,
  options: { shards?: number; shard?: number; settings?: Partial<ShardSettings>; newId?: NewId } = {},
): Fixture {
  const map = shardMap(layoutOf(layout), options.shards ?? 1);
  const settings = resolveShardSettings({ holdTtlMs: 60_000, customerLimit: 6, ...options.settings });
  const inventory = ShardInventory.create({ map, shard: options.shard ?? 0 }, settings, options.newId ?? counterIds());
  return { map, inventory, settings };
}

let keys = 0;
/** A fresh idempotency key. */
export function key(): string {
  return `key-${++keys}`;
}

export const hold = (customer: string, seats: string[], k = key()): ShardCommand => ({ type: 'hold', key: k, customer, seats });
export const holdBest = (customer: string, section: string, quantity: number, k = key(), strictOrphans?: boolean): ShardCommand => ({
  type: 'hold-best',
  key: k,
  customer,
  section,
  quantity,
  ...(strictOrphans === undefined ? {} : { strictOrphans }),
});
export const holdPool = (customer: string, pool: string, quantity: number, k = key()): ShardCommand => ({
  type: 'hold-pool',
  key: k,
  customer,
  pool,
  quantity,
});
export const confirm = (customer: string, holdId: string, k = key()): ShardCommand => ({ type: 'confirm', key: k, customer, holdId });
export const release = (customer: string, holdId: string, k = key()): ShardCommand => ({ type: 'release', key: k, customer, holdId });
export const reserve = (customer: string, seat: string, k = key()): ShardCommand => ({ type: 'reserve', key: k, customer, seat });
