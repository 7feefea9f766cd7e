/** A shard of one event, the unit engines claim. */
export interface ShardRef {
  readonly eventId: string;
  readonly shard: number;
}

export function shardKey(ref: ShardRef): string {
  return `${ref.eventId}/${ref.shard}`;
}

/**
 * Which shards an engine should own, given every shard on sale and the live engines. Pure and
 * deterministic — every engine computes the same answer from the same membership — and balanced:
 * shards are dealt round-robin over the engines in id order, so counts differ by at most one
 * (8 shards over 2 engines: 4 and 4; over 3: 3, 3 and 2).
 */
export function assignShards(shards: readonly ShardRef[], engines: readonly string[], engineId: string): ShardRef[] {
  const members = [...new Set(engines)].sort();
  const index = members.indexOf(engineId);
  if (index < 0) return [];
  const ordered = [...shards].sort((a, b) => (a.eventId === b.eventId ? a.shard - b.shard : a.eventId < b.eventId ? -1 : 1));
  return ordered.filter((_, i) => i % members.length === index);
}
