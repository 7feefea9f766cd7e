import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The engine's Prometheus metrics, on a registry of its own (no global state). */
export class EngineMetrics {
  readonly registry = new Registry();
  readonly ownedShards = new Gauge({
    name: 'sentinel_engine_owned_shards',
    help: 'Shards this engine owns and serves',
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'sentinel_engine_batch_size',
    help: 'Commands per group commit',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: 'sentinel_engine_commit_seconds',
    help: 'Latency of one group commit transaction',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'sentinel_engine_decisions_total',
    help: 'Shard decisions by result type',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly leaseEvents = new Counter({
    name: 'sentinel_engine_lease_events_total',
    help: 'Shard lease events (claimed, released, lost, fenced, commit_failed)',
    labelNames: ['event'],
    registers: [this.registry],
  });
  readonly outboxPublished = new Counter({
    name: 'sentinel_outbox_published_total',
    help: 'Outbox rows published to Kafka',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
