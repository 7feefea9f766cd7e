/**
 * A rate-limited work queue of object keys, with client-go's guarantees: a key is in the queue at
 * most once, a key is never processed by two workers at once (a key added while it is processed
 * is queued again when it is done), delayed adds keep the earliest deadline, and failures back off
 * exponentially per key until `forget`.
 */

/** Per-key exponential backoff. */
export interface Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 200, maxMs: 5 * 60_000 };

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { readonly at: number; readonly timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(private readonly backoff: Backoff = DEFAULT_BACKOFF) {}

  /** Queues a key now (no-op if it is already waiting). */
  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Queues a key after `ms`; an earlier pending deadline for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    // On the monotonic clock that setTimeout itself keeps: a step of the wall clock must not make
    // a later, longer requeue look earlier than a pending shorter one (and replace it).
    const at = performance.now() + ms;
    const pending = this.delayed.get(key);
    if (pending !== undefined) {
      if (pending.at <= at) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, timer });
  }

  /** Queues a key after its next backoff delay; returns the delay. */
  addRateLimited(key: string): number {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const delay = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** Math.min(failures - 1, 30));
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears a key's failure count (after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many times a key failed in a row. */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Waits for the next key; undefined once the queue shuts down. The caller must call `done(key)`. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
    if (this.processing.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Keys waiting to be processed (not counting delayed ones). */
  get depth(): number {
    return this.queue.length;
  }

  /** Keys being processed now. */
  get active(): number {
    return this.processing.size;
  }

  /** Stops handing out keys; resolves when the keys in progress are done. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.dirty.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
    if (this.processing.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }
}
