/**
 * Group commit: winners' work accumulates for a short window (or until the batch is full) and
 * is written by ONE transaction; commits run one at a time, and the next batch fills while the
 * current one is being written. Losers never come here.
 */
export class GroupCommitter<T> {
  private pending: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly options: { windowMs: number; maxBatch: number },
    private readonly commit: (batch: T[]) => Promise<void>,
  ) {}

  get size(): number {
    return this.pending.length;
  }

  add(entry: T): void {
    if (this.closed) throw new Error('group committer is closed');
    this.pending.push(entry);
    if (this.pending.length >= this.options.maxBatch) this.kick();
    else if (!this.timer && !this.running) this.timer = setTimeout(() => this.kick(), this.options.windowMs);
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.options.maxBatch);
    this.running = this.commit(batch).finally(() => {
      this.running = undefined;
      // Whatever arrived during the commit goes next, without waiting another window.
      if (this.pending.length > 0) this.kick();
    });
  }

  /** Replaces each entry not yet handed to a commit by what `change` makes of it. */
  update(change: (entry: T) => T): void {
    this.pending = this.pending.map(change);
  }

  /** Commits everything pending, waiting for in-flight commits; used on hand-off. */
  async flush(): Promise<void> {
    for (;;) {
      if (this.running) await this.running.catch(() => undefined);
      else if (this.pending.length > 0) this.kick();
      else return;
    }
  }

  /** Refuses new entries and returns those not yet handed to a commit. */
  close(): T[] {
    this.closed = true;
    clearTimeout(this.timer);
    return this.pending.splice(0);
  }
}
