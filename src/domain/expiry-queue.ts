/**
 * Min-heap of (expiresAt, holdId). Entries of holds that ended early are not removed; the owner
 * skips them when they surface (lazy deletion keeps release and confirm O(1)).
 */
export class ExpiryQueue {
  private readonly times: number[] = [];
  private readonly ids: string[] = [];

  get size(): number {
    return this.times.length;
  }

  push(expiresAt: number, holdId: string): void {
    const times = this.times;
    const ids = this.ids;
    let i = times.length;
    times.push(expiresAt);
    ids.push(holdId);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentTime = times[parent]!;
      if (parentTime <= expiresAt) break;
      times[i] = parentTime;
      ids[i] = ids[parent]!;
      i = parent;
    }
    times[i] = expiresAt;
    ids[i] = holdId;
  }

  /** Earliest time, or Infinity when empty. */
  peekTime(): number {
    return this.times.length === 0 ? Infinity : this.times[0]!;
  }

  /** Id of the earliest entry; call only when not empty. */
  peekId(): string {
    return this.ids[0]!;
  }

  /** Removes the earliest entry. */
  pop(): void {
    const times = this.times;
    const ids = this.ids;
    const lastTime = times.pop()!;
    const lastId = ids.pop()!;
    const size = times.length;
    if (size === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && times[right]! < times[left]! ? right : left;
      if (times[child]! >= lastTime) break;
      times[i] = times[child]!;
      ids[i] = ids[child]!;
      i = child;
    }
    times[i] = lastTime;
    ids[i] = lastId;
  }

  clear(): void {
    this.times.length = 0;
    this.ids.length = 0;
  }
}
