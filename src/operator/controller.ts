/**
 * Runs the reconciler over a work queue with a fixed number of workers: keys of different objects
 * proceed in parallel, one key is never reconciled twice at once (the queue guarantees it). A
 * retryable failure requeues the key with per-key exponential backoff. A terminal failure (the
 * reconciler has already reported it on the object) is looked at again after `terminalRetryMs`,
 * without backoff, and at once when the object changes: it will not succeed before the object or
 * the operator's settings change, but each attempt brings the status's phase up to date — a sale
 * goes on whatever the operator fails to do, and its phase must not freeze at `OnSale` past the
 * close (the attempts record no new Event while the failure stays the same).
 */
import { SentinelError } from '../errors.js';
import type { Logger } from '../log.js';
import { objectKeyOf } from './event-id.js';
import type { OperatorMetrics } from './metrics.js';
import type { ReconcileResult } from './reconciler.js';
import type { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  readonly queue: WorkQueue;
  readonly reconcile: (key: { namespace: string; name: string }) => Promise<ReconcileResult>;
  readonly workers: number;
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  /** When a key whose reconcile failed terminally is reconciled again (ms; the operator's refresh interval). */
  readonly terminalRetryMs: number;
}

export class Controller {
  private readonly options: ControllerOptions;
  private workers: Promise<void>[] = [];
  /** The last terminal failure of each key failing terminally now (its message). */
  private readonly terminal = new Map<string, string>();

  constructor(options: ControllerOptions) {
    this.options = options;
  }

  start(): void {
    for (let i = 0; i < this.options.workers; i++) this.workers.push(this.work());
  }

  /** Stops taking keys and waits for the reconciles in progress. */
  async stop(): Promise<void> {
    await this.options.queue.shutdown();
    await Promise.all(this.workers);
    this.workers = [];
  }

  private async work(): Promise<void> {
    const { queue, metrics, log } = this.options;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      metrics.queueDepth.set(queue.depth);
      metrics.queueActive.set(queue.active);
      const timer = metrics.duration.startTimer();
      try {
        const result = await this.options.reconcile(objectKeyOf(key));
        queue.forget(key);
        this.terminal.delete(key);
        metrics.reconciles.inc({ result: 'success' });
        if (result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        const retryable = !(error instanceof SentinelError) || error.retryable;
        const code = error instanceof SentinelError ? error.code : 'unexpected';
        metrics.reconciles.inc({ result: 'error' });
        metrics.errors.inc({ code, retryable: String(retryable) });
        if (retryable) {
          const delay = queue.addRateLimited(key);
          log.debug({ key, code, retryInMs: delay, failures: queue.failuresOf(key) }, 'Requeued after error');
        } else {
          queue.forget(key);
          queue.addAfter(key, this.options.terminalRetryMs);
          // An error the first time (and when the failure changes), not at every look.
          const message = error instanceof Error ? error.message : String(error);
          const repeated = this.terminal.get(key) === message;
          this.terminal.set(key, message);
          log[repeated ? 'debug' : 'error'](
            { key, code, err: error, againInMs: this.options.terminalRetryMs },
            'Reconcile failed terminally; it will not succeed before the object or the settings change',
          );
        }
      } finally {
        timer();
        queue.done(key);
        metrics.queueDepth.set(queue.depth);
        metrics.queueActive.set(queue.active);
      }
    }
  }
}
