/**
 * Runs the reconciler over a work queue with a fixed number of workers: keys of different objects
 * proceed in parallel, one key is never reconciled twice at once (the queue guarantees it). A
 * retryable failure requeues the key with per-key exponential backoff; a terminal failure is not
 * retried (the reconciler has already reported it on the object) until the object changes or the
 * periodic resync looks again.
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
}

export class Controller {
  private readonly options: ControllerOptions;
  private workers: Promise<void>[] = [];

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
          log.error({ key, code, err: error }, 'Reconcile failed terminally; waiting for a change to the object');
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
