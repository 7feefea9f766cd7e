/**
 * The ingress's Prometheus metrics, on a registry of its own (so tests can run several apps in one
 * process). Names follow Prometheus conventions: `_total` counters, `_seconds` histograms.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets (s) around the p99 ≤ 100 ms target, with room on both sides. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface IngressMetrics {
  readonly registry: Registry;
  /** Requests by method, route (the OpenAPI path, never the raw URL) and status. */
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly requestDuration: Histogram<'method' | 'route'>;
  /** NATS round trips to shards, by command type and outcome (result type or error code). */
  readonly shardRequests: Histogram<'command' | 'outcome'>;
  /** Requests refused by admission control, per event. */
  readonly admissionRejections: Counter<'event'>;
  /** Idempotency outcomes other than a fresh claim: replay, mismatch, in-flight, unknown. */
  readonly idempotency: Counter<'outcome'>;
  /** Requests refused for seats known to be sold, without a shard round trip. */
  readonly knownSold: Counter;
  /** Requests that waited for another customer's shard answer about their seat (SeatFlights). */
  readonly flightWaits: Counter;
  /** Seats learned sold from the shards' announcements (`sentinel-sales.<event>`). */
  readonly salesHeard: Counter;
  /** Whether a dependency answered its last check (1) or not (0): checked every 5 s and at /readyz (Readiness.watch). */
  readonly dependencyUp: Gauge;
}

export function createIngressMetrics(options: { defaultMetrics?: boolean } = {}): IngressMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'sentinel_ingress_' });
  return {
    registry,
    requests: new Counter({
      name: 'sentinel_ingress_http_requests_total',
      help: 'HTTP requests answered, by method, route and status.',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'sentinel_ingress_http_request_duration_seconds',
      help: 'Time from receiving a request to sending its response, by method and route.',
      labelNames: ['method', 'route'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    shardRequests: new Histogram({
      name: 'sentinel_ingress_shard_request_duration_seconds',
      help: 'NATS request/reply round trips to inventory shards (including retries), by command and outcome.',
      labelNames: ['command', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    admissionRejections: new Counter({
      name: 'sentinel_ingress_admission_rejections_total',
      help: "Requests refused with 429 because the event's admission rate was exceeded.",
      labelNames: ['event'],
      registers: [registry],
    }),
    idempotency: new Counter({
      name: 'sentinel_ingress_idempotency_total',
      help: 'Idempotency-Key outcomes other than a fresh claim: replay, mismatch, in-flight, unknown (a request the ingress could have refused alone went to the shard: an earlier one with its key got no answer).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    knownSold: new Counter({
      name: 'sentinel_ingress_known_sold_refusals_total',
      help: 'Requests refused with 409 for seats this ingress already knew to be sold, without asking a shard.',
      registers: [registry],
    }),
    flightWaits: new Counter({
      name: 'sentinel_ingress_seat_flight_waits_total',
      help: "Requests that waited for another customer's request to learn its shard's answer about the same seat before asking.",
      registers: [registry],
    }),
    salesHeard: new Counter({
      name: 'sentinel_ingress_sales_heard_total',
      help: 'Seats this ingress learned were sold from the shards’ announcements of their commits, whichever replica sold them.',
      registers: [registry],
    }),
    dependencyUp: new Gauge({
      name: 'sentinel_ingress_dependency_up',
      help: 'Whether Redis, NATS or Postgres answered its last check (made every 5 s by each process, and at /readyz): 1 or 0. Not part of readiness (shared by every replica).',
      labelNames: ['dependency'],
      // Over the workers of --workers N: 1 only when every worker's last check passed (each checks
      // on its own timer, so a recovery shows within one period in all of them).
      aggregator: 'min',
      registers: [registry],
    }),
  };
}
