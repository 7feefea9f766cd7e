import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { withDeadline } from '../deadline.js';
import type { OutboxBacklog } from './outbox-relay.js';

/** Longest a scrape waits for the outbox backlog (ms). */
const OUTBOX_READ_TIMEOUT_MS = 2000;

/** The engine's Prometheus metrics, on a registry of its own (no global state). */
export class EngineMetrics {
  readonly registry = new Registry();
  readonly ownedShards = new Gauge({
    name: 'sentinel_engine_owned_shards',
    help: 'Shards this engine owns and serves',
    registers: [this.registry],
  });
  readonly natsLink = new Gauge({
    name: 'sentinel_engine_nats_link',
    help: 'Whether NATS answers this engine: 1 ok, 0.5 suspect (not renewing its membership, not claiming), 0 cut off (left the membership; hands its shards to an engine NATS reaches, if any)',
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
  readonly commitTransactions = new Counter({
    name: 'sentinel_engine_commit_transactions_total',
    help: "Postgres transactions of group commits: together (several shards' commits in one, committed), together-refused (refused as a whole or failed: each shard's then goes alone), alone (one shard's)",
    labelNames: ['way'],
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'sentinel_engine_decisions_total',
    help: "Shard decisions by result type; a command answered with its idempotency key's remembered result is a replay, not a decision (sentinel_engine_replays_total)",
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly replays = new Counter({
    name: 'sentinel_engine_replays_total',
    help: "Commands answered with their idempotency key's remembered result (a client's retry), by that result's type: nothing was decided again",
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly leaseEvents = new Counter({
    name: 'sentinel_engine_lease_events_total',
    help: 'Shard lease events: claimed, released, lost, fenced (a commit found the epoch moved on: another engine claimed the shard), version_conflict (a commit found a seat, pool or hold changed underneath, the epoch still its own: memory and Postgres disagreed; stopped and rebuilt as after a fence), commit_failed, faulted',
    labelNames: ['event'],
    registers: [this.registry],
  });
  readonly redisConnected = new Gauge({
    name: 'sentinel_engine_redis_connected',
    help: "Whether the engine's Redis client (shard leases, membership) is connected and ready: 1, or 0 while it reconnects. A Redis that stops answering on an open connection still reads 1 (its commands time out: see the logs)",
    registers: [this.registry],
  });
  readonly redisReconnects = new Counter({
    name: 'sentinel_engine_redis_reconnects_total',
    help: "Times the engine's Redis client was ready again after losing its connection (counts outages too short for a scrape of sentinel_engine_redis_connected to see)",
    registers: [this.registry],
  });
  readonly retentionDeleted = new Counter({
    name: 'sentinel_engine_retention_deleted_total',
    help: 'Rows this engine deleted as expired, by table (idempotency_keys past the idempotency window, outbox rows published longer ago than the retention)',
    labelNames: ['table'],
    registers: [this.registry],
  });
  readonly outboxPublished = new Counter({
    name: 'sentinel_outbox_published_total',
    help: 'Outbox rows published to Kafka',
    registers: [this.registry],
  });
  readonly outboxIncompleteAcks = new Counter({
    name: 'sentinel_outbox_incomplete_acks_total',
    help: 'Kafka sends resolved without an acknowledgement for every partition they went to: treated as failed, their rows sent again in a new producer session',
    registers: [this.registry],
  });

  /** Where the outbox backlog is read at each scrape (the engine sets it when it relays). */
  outboxBacklog: (() => Promise<readonly OutboxBacklog[]>) | undefined;
  readonly outboxPending = new Gauge({
    name: 'sentinel_outbox_pending',
    help: 'Unpublished outbox rows by topic, read from Postgres at each scrape: the same on every engine (absent while Postgres cannot be read)',
    labelNames: ['topic'],
    registers: [this.registry],
    collect: () => this.collectOutbox(),
  });
  readonly outboxOldestPendingSeconds = new Gauge({
    name: 'sentinel_outbox_oldest_pending_seconds',
    help: 'Age of the oldest unpublished outbox row by topic (publication lag)',
    labelNames: ['topic'],
    registers: [this.registry],
    collect: () => this.collectOutbox(),
  });
  /** The read in flight: a scrape collects both backlog gauges at once, from one query. */
  private outboxRead: Promise<void> | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  private collectOutbox(): Promise<void> {
    this.outboxRead ??= this.readOutbox().finally(() => {
      this.outboxRead = undefined;
    });
    return this.outboxRead;
  }

  private async readOutbox(): Promise<void> {
    this.outboxPending.reset();
    this.outboxOldestPendingSeconds.reset();
    if (this.outboxBacklog === undefined) return;
    let backlog: readonly OutboxBacklog[];
    try {
      // A scrape must not wait for an unreachable Postgres (its connect timeout is longer).
      backlog = await withDeadline(this.outboxBacklog(), OUTBOX_READ_TIMEOUT_MS);
    } catch {
      return; // no series rather than stale ones; readiness reports Postgres
    }
    for (const { topic, rows, oldestSeconds } of backlog) {
      this.outboxPending.set({ topic }, rows);
      this.outboxOldestPendingSeconds.set({ topic }, oldestSeconds);
    }
  }
}
