/** The operator's Prometheus metrics, on a registry of its own (two operators can share a process in tests). */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'sentinel_operator_reconciles_total',
    help: 'Reconciles of TicketEvents by result (success, error)',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'sentinel_operator_reconcile_errors_total',
    help: 'Failed reconciles by error code and whether they are retried',
    labelNames: ['code', 'retryable'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'sentinel_operator_reconcile_duration_seconds',
    help: 'Time of one reconcile',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'sentinel_operator_queue_depth',
    help: 'Keys waiting in the work queue',
    registers: [this.registry],
  });
  readonly queueActive = new Gauge({
    name: 'sentinel_operator_queue_active',
    help: 'Keys being reconciled now',
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'sentinel_operator_leader',
    help: '1 while this operator holds the leader lease',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }
}
