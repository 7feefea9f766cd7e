/**
 * Collects the calls made during one turn of the event loop, per group, and sends each group's
 * calls together (at most `maxBatch` per send) once the turn's I/O callbacks have run
 * (`setImmediate`): every request parsed in that turn joins the same batch, for no more delay
 * than the turn itself. Each caller gets its own item's reply, or the send's error.
 */
export class TickBatcher<Item, Reply> {
  private queued = new Map<string, { items: Item[]; settles: { resolve: (reply: Reply) => void; reject: (error: unknown) => void }[] }>();
  private scheduled = false;

  constructor(
    private readonly maxBatch: number,
    /** Sends one group's items; answers one reply per item, in order. */
    private readonly send: (group: string, items: Item[]) => Promise<Reply[]>,
  ) {}

  add(group: string, item: Item): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      let queue = this.queued.get(group);
      if (queue === undefined) {
        queue = { items: [], settles: [] };
        this.queued.set(group, queue);
      }
      queue.items.push(item);
      queue.settles.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const queued = this.queued;
    this.queued = new Map();
    for (const [group, { items, settles }] of queued) {
      for (let from = 0; from < items.length; from += this.maxBatch) {
        const part = settles.slice(from, from + this.maxBatch);
        const fail = (error: unknown) => {
          for (const settle of part) settle.reject(error);
        };
        let sent: Promise<Reply[]>;
        try {
          sent = this.send(group, items.slice(from, from + this.maxBatch));
        } catch (error) {
          // A send that throws instead of rejecting fails its own callers, not the other groups'.
          fail(error);
          continue;
        }
        sent.then((replies) => {
          // A reply per item, or none is trusted.
          if (replies.length !== part.length) return fail(new Error(`batch of ${part.length} answered with ${replies.length} replies`));
          part.forEach((settle, i) => settle.resolve(replies[i]!));
        }, fail);
      }
    }
  }
}
