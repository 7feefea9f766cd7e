import { fmix32 } from '../hash.js';

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
 * deterministic — every engine computes the same answer from the same membership, with no
 * coordinator — and, per event, balanced: each event's shards are shared out so that engines'
 * counts differ by at most one (8 shards over 3 engines: 3, 3 and 2), since a sale's load is
 * one event's.
 *
 * Stable, by rendezvous (highest-random-weight) hashing: each shard prefers the engines in the
 * order of a hash of the pair, and gets its most preferred one that has room, so a change of
 * membership moves about the shards it must — the leaver's, or the newcomer's share — and
 * opening or closing one event never moves another's. (Dealing shards round-robin over the
 * engines, as before, moved most of them on every change, each move a hand-off and a rebuild
 * while clients get 503s; ADR 0006.) Events are independent, so over many events the counts
 * balance on average, not to within one.
 */
export function assignShards(shards: readonly ShardRef[], engines: readonly string[], engineId: string): ShardRef[] {
  const members = [...new Set(engines)].sort();
  if (!members.includes(engineId)) return [];
  const byEvent = new Map<string, number[]>();
  for (const ref of shards) {
    const list = byEvent.get(ref.eventId);
    if (list) list.push(ref.shard);
    else byEvent.set(ref.eventId, [ref.shard]);
  }
  const mine: ShardRef[] = [];
  for (const [eventId, numbers] of [...byEvent].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const sorted = [...new Set(numbers)].sort((a, b) => a - b);
    assignEvent(eventId, sorted, members).forEach((owner, i) => {
      if (owner === engineId) mine.push({ eventId, shard: sorted[i]! });
    });
  }
  return mine;
}

/**
 * The owner of each of one event's shards (in the order given). Every (shard, engine) pair is
 * weighed, and pairs are taken heaviest first: a shard goes to an engine while the engine has
 * less than an equal share, or exactly that while some engines may still carry one more (the
 * division's remainder) — so the engines that carry one more are those most shards prefer.
 */
function assignEvent(eventId: string, shards: readonly number[], members: readonly string[]): string[] {
  const share = Math.floor(shards.length / members.length);
  let remainder = shards.length % members.length;
  const pairs = shards.flatMap((shard, index) =>
    members.map((member) => ({ index, member, weight: weight(shardKey({ eventId, shard }), member) })),
  );
  pairs.sort((a, b) => b.weight - a.weight || a.index - b.index || (a.member < b.member ? -1 : 1));
  const owners: string[] = [];
  const load = new Map(members.map((m) => [m, 0]));
  for (const { index, member } of pairs) {
    const count = load.get(member)!;
    if (owners[index] !== undefined || count > share || (count === share && remainder === 0)) continue;
    if (count === share) remainder--;
    load.set(member, count + 1);
    owners[index] = member;
  }
  return owners;
}

/** A well-mixed 32-bit hash of the pair: FNV-1a over both strings, then MurmurHash3's finaliser. */
function weight(key: string, member: string): number {
  let h = 0x811c9dc5;
  const text = `${key}\u0000${member}`;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return fmix32(h);
}
