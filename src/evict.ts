/**
 * Bounding an insertion-ordered Map by forgetting its oldest entries — in amortized O(1).
 *
 * The obvious `map.delete(map.keys().next().value)` on every insert is not O(1) in V8: a Map's
 * iterator starts at the first slot and walks past every slot deleted since the table was last
 * rebuilt, so with the oldest entry deleted on every insert each call walks further — about 10 µs
 * per insert at 50,000 entries, as much as verifying a JWT. Evicting a sixteenth of the capacity
 * at once makes each walk pay for many inserts.
 */

/** Once `map` holds more than `capacity` entries, deletes the oldest so it keeps about 15/16 of it (one at a time below 16). */
export function evictOldest<K, V>(map: Map<K, V>, capacity: number): void {
  if (map.size <= capacity) return;
  let excess = map.size - capacity + Math.floor(capacity / 16);
  for (const key of map.keys()) {
    if (excess-- <= 0) break;
    map.delete(key);
  }
}
