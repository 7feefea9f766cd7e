import t from 'tap';
import { SentinelError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { Controller } from '../../../src/operator/controller.js';
import { OperatorMetrics } from '../../../src/operator/metrics.js';
import { WorkQueue } from '../../../src/operator/work-queue.js';

t.test('a terminal failure is reconciled again after terminalRetryMs (the phase must not freeze), without backoff', async (t) => {
  const queue = new WorkQueue();
  const attempts: number[] = [];
  const started = Date.now();
  let succeeded: () => void;
  const done = new Promise<void>((resolve) => (succeeded = resolve));
  const controller = new Controller({
    queue,
    workers: 1,
    log: silentLogger,
    metrics: new OperatorMetrics(),
    terminalRetryMs: 100,
    reconcile: async () => {
      attempts.push(Date.now() - started);
      if (attempts.length < 3) throw new SentinelError('child_rejected', 'refused by the API server');
      succeeded();
      return {};
    },
  });
  controller.start();
  t.teardown(() => controller.stop());
  queue.add('ns/event');
  await done;
  t.equal(attempts.length, 3);
  for (const i of [1, 2]) {
    const gap = attempts[i]! - attempts[i - 1]!;
    t.ok(gap >= 90 && gap < 1000, `attempt ${i + 1} came ${gap} ms after the one before: terminalRetryMs, not a growing backoff`);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(attempts.length, 3, 'a success that asks for no requeue is not reconciled again');
});
