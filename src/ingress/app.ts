/**
 * The ingress Koa application. Every dependency is passed in, so tests run the real app against
 * real Redis, NATS and Postgres — with real engines, or with a fake shard answering on the shard's
 * subject — and the CLI wires production ones.
 *
 * Middleware, outermost first: request context (id, logger, metrics, access log) → the one error
 * middleware → the router, built from docs/openapi.json (each operation: authentication, parameter
 * and body validation with the document's schemas, then its handler) → 404/405.
 */
import { randomUUID } from 'node:crypto';
import { Router } from '@koa/router';
import Koa from 'koa';
import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import type pg from 'pg';
import { InventoryStore } from '../adapters/postgres/inventory-store.js';
import { ShardClient } from '../engine/shard-client.js';
import type { Logger } from '../log.js';
import { bearerToken, type TokenVerifier } from './auth.js';
import { BODY_LIMIT_BYTES, readJsonBody } from './body.js';
import { CommandGate, parseIdempotencyKey } from './command-gate.js';
import { RequestState, type Handler, type IngressContext, type IngressState, type ShardSender } from './context.js';
import { EventCatalog, type EventSource } from './event-catalog.js';
import { HoldLocator } from './hold-locator.js';
import { InventoryReads } from './inventory-reads.js';
import { createIngressMetrics, type IngressMetrics } from './metrics.js';
import { loadOpenApi, type OpenApi, type Operation } from './openapi.js';
import { HttpProblem, problemOf } from './problems.js';
import { dependencyChecks, livenessChecks, Readiness, type DependencyCheck, type LivenessCheck } from './readiness.js';
import { SeatFlights } from './seat-flights.js';
import { listenForSales, SoldSeats } from './sold-seats.js';
import { commandRoutes } from './routes/commands.js';
import { readRoutes } from './routes/reads.js';

/** Settings of the ingress (from Config). */
export interface IngressSettings {
  /** Deadline of a request's shard work (`SENTINEL_SHARD_TIMEOUT_MS`). */
  readonly shardTimeoutMs: number;
  /** Retention of stored idempotent responses (`SENTINEL_IDEMPOTENCY_TTL_S`). */
  readonly idempotencyTtlS: number;
  /** Largest request body (bytes). */
  readonly bodyLimitBytes?: number;
  /** Longest a request waits for another's answer about its seat (ms; SeatFlights). */
  readonly seatFlightWaitMs?: number;
  /** How long after a close a commit may still land (CommandRouteDeps.closeSettleMs; see `closeSettleMs`). */
  readonly closeSettleMs: number;
  /** How often the process checks its dependencies by itself, /readyz or not (ms; `Readiness.watch`, default 5 s). */
  readonly dependencyCheckIntervalMs?: number;
}

/** Everything the ingress talks to. */
export interface IngressDependencies {
  readonly log: Logger;
  readonly redis: Redis;
  readonly nc: NatsConnection;
  readonly pg: pg.Pool;
  readonly tokens: TokenVerifier;
  readonly settings: IngressSettings;
  /** Defaults to a ShardClient on `nc`. */
  readonly shards?: ShardSender;
  /** Defaults to the InventoryStore on `pg`. */
  readonly events?: EventSource;
  /** Defaults to the Redis, NATS and Postgres checks. */
  readonly readinessChecks?: Record<string, DependencyCheck>;
  /** What `/healthz` looks at; defaults to the Redis, NATS and Postgres clients not being closed for good. */
  readonly livenessChecks?: Record<string, LivenessCheck>;
  readonly openapi?: OpenApi;
  readonly metrics?: IngressMetrics;
  /** The `/metrics` text; defaults to this process's registry (a worker sums all workers', see cluster.ts). */
  readonly metricsText?: () => Promise<string>;
  readonly now?: () => number;
}

/** The app plus the handles its owner needs. */
export interface IngressApp {
  readonly koa: Koa<IngressState>;
  readonly metrics: IngressMetrics;
  readonly readiness: Readiness;
  readonly openapi: OpenApi;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function createIngressApp(deps: IngressDependencies): IngressApp {
  const now = deps.now ?? Date.now;
  const openapi = deps.openapi ?? loadOpenApi();
  const metrics = deps.metrics ?? createIngressMetrics();
  const readiness = new Readiness({
    checks: deps.readinessChecks ?? dependencyChecks(deps),
    liveness: deps.livenessChecks ?? livenessChecks(deps),
    now,
    log: deps.log,
    checked: (dependency, ok) => metrics.dependencyUp.set({ dependency }, ok ? 1 : 0),
  });
  // The gauge follows the dependencies in every process, /readyz asked or not; stopped by markShuttingDown.
  readiness.watch(deps.settings.dependencyCheckIntervalMs);
  const reads = new InventoryReads(deps.pg, now);
  const catalog = new EventCatalog(deps.events ?? new InventoryStore(deps.pg), now);
  const bodyLimit = deps.settings.bodyLimitBytes ?? BODY_LIMIT_BYTES;
  const soldSeats = new SoldSeats(now);
  listenForSales(deps.nc, soldSeats, (seats) => metrics.salesHeard.inc(seats), deps.log);

  const handlers: Record<string, Handler> = {
    ...commandRoutes({
      catalog,
      gate: new CommandGate(deps.redis, deps.settings.idempotencyTtlS),
      locator: new HoldLocator(reads),
      reads,
      shards: deps.shards ?? new ShardClient(deps.nc, deps.log),
      metrics,
      soldSeats,
      flights: new SeatFlights(deps.settings.seatFlightWaitMs),
      shardTimeoutMs: deps.settings.shardTimeoutMs,
      idempotencyTtlMs: deps.settings.idempotencyTtlS * 1000,
      closeSettleMs: deps.settings.closeSettleMs,
      now,
    }),
    ...readRoutes({ catalog, reads }),
    getHealth: async (ctx) => {
      // A client closed for good (NATS given up on, say) mends only with a restart: a 503 here makes
      // the liveness probe restart the container. A dependency merely down does not fail it.
      const health = readiness.health();
      ctx.status = health.alive ? 200 : 503;
      ctx.body = health.shuttingDown
        ? { status: 'shutting-down' }
        : health.alive
          ? { status: 'ok' }
          : { status: 'failed', checks: health.failed };
    },
    getReadiness: async (ctx) => {
      const report = await readiness.report();
      ctx.status = report.ready ? 200 : 503;
      ctx.body = { status: !report.ready ? 'shutting-down' : report.dependenciesOk ? 'ok' : 'degraded', checks: report.checks };
    },
    getMetrics: async (ctx) => {
      ctx.body = await (deps.metricsText ?? (() => metrics.registry.metrics()))();
      ctx.type = metrics.registry.contentType;
    },
    getOpenApi: async (ctx) => {
      ctx.body = openapi.json;
      ctx.type = 'application/json';
    },
  };

  const koa = new Koa<IngressState>();
  koa.on('error', reportOutsideError(deps.log));
  koa.use(requestContext(deps.log, metrics));
  koa.use(errorMiddleware(deps.log));
  const router = new Router<IngressState>();
  const served = new Set<string>();
  for (const operation of openapi.operations) {
    const handler = handlers[operation.operationId];
    if (handler === undefined) throw new Error(`openapi: no handler for operation ${operation.operationId}`);
    served.add(operation.operationId);
    const method = operation.method.toLowerCase() as 'get' | 'post' | 'delete' | 'put' | 'patch';
    router[method](operation.routerPath, operationMiddleware(operation, deps.tokens, bodyLimit), handler);
  }
  for (const id of Object.keys(handlers)) if (!served.has(id)) throw new Error(`openapi: handler ${id} has no operation in the document`);
  koa.use(router.routes());
  koa.use(async (ctx) => {
    // No operation matched: 405 when the path exists with other methods, else 404.
    const match = router.match(ctx.path, ctx.method);
    const allowed = new Set(match.path.flatMap((layer) => layer.methods));
    if (allowed.size > 0) {
      throw new HttpProblem('method-not-allowed', `${ctx.method} is not allowed on ${ctx.path}`, {
        headers: { Allow: [...allowed].join(', ') },
      });
    }
    throw new HttpProblem('not-found', `no resource at ${ctx.path}`);
  });
  return { koa, metrics, readiness, openapi };
}

function requestContext(log: Logger, metrics: IngressMetrics): Koa.Middleware<IngressState> {
  const accessLog = log.isLevelEnabled('info');
  // Request ids: a random per-process prefix and a counter — unique across replicas and restarts
  // like a UUID, at the price of an increment.
  const idPrefix = randomUUID();
  let ids = 0;
  // The request metrics' label sets, resolved once per (method, route, status) instead of per request.
  // Routes are the document's paths and 'unmatched', so the map stays small.
  const requestSeries = new Map<string, { count: { inc(): void }; duration: { observe(value: number): void } }>();
  return async (ctx, next) => {
    const started = performance.now();
    const incoming = ctx.get('X-Request-Id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : `${idPrefix}-${(ids++).toString(36)}`;
    const state = new RequestState(requestId, log);
    ctx.state = state;
    ctx.set('X-Request-Id', requestId);
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const route = state.route;
      const series = `${ctx.method} ${route} ${ctx.status}`;
      let labelled = requestSeries.get(series);
      if (labelled === undefined) {
        labelled = {
          count: metrics.requests.labels({ method: ctx.method, route, status: String(ctx.status) }),
          duration: metrics.requestDuration.labels({ method: ctx.method, route }),
        };
        requestSeries.set(series, labelled);
      }
      labelled.count.inc();
      labelled.duration.observe(seconds);
      if (accessLog) {
        log.info(
          {
            requestId,
            method: ctx.method,
            route,
            path: ctx.path,
            status: ctx.status,
            durationMs: Math.round(seconds * 10_000) / 10,
            customer: state.customer,
          },
          'Handled request',
        );
      }
    }
  };
}

/** The errors of a connection that mean the client went away (reset, closed mid-response). */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * What Koa reports outside the middleware — the response's socket failing, mostly a client that
 * reset its connection mid-request (common in a rush) — goes to the log: at debug when the client
 * went away, else as a warning. Without a listener Koa prints each one to stderr, a stack with no
 * request id, written synchronously when stderr is a pipe.
 */
function reportOutsideError(log: Logger): (error: unknown, ctx?: { state?: Partial<IngressState> }) => void {
  return (error, ctx) => {
    const code = (error as { code?: unknown } | null)?.code;
    const clientGone = (typeof code === 'string' && CLIENT_GONE.has(code)) || (error instanceof Error && error.message === 'aborted');
    const fields = { requestId: ctx?.state?.requestId, err: error instanceof Error ? error.message : String(error) };
    if (clientGone) log.debug(fields, 'Client went away mid-request');
    else log.warn(fields, 'Connection failed outside a request handler');
  };
}

/** The one error middleware: every error becomes a problem+json response, its status decided by `problemOf`. */
function errorMiddleware(log: Logger): Koa.Middleware<IngressState> {
  // Refusals are the common case of a flash sale: their log line (and the request's child logger)
  // is not even built unless debug logging is on.
  const logRefusals = log.isLevelEnabled('debug');
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const problem = problemOf(error, ctx.state.requestId);
      if (problem.unexpected) ctx.state.log.error({ err: error }, 'Request failed unexpectedly');
      else if (problem.status >= 500)
        ctx.state.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'Request failed: dependency unavailable');
      else if (logRefusals) ctx.state.log.debug({ problem: problem.body.type, detail: problem.body.detail }, 'Request refused');
      ctx.status = problem.status;
      ctx.set(problem.headers as Record<string, string>);
      // The type first: the body setter then keeps it instead of looking up 'json'.
      ctx.set('Content-Type', 'application/problem+json; charset=utf-8');
      ctx.body = problem.body;
    }
    // The router matches paths case-insensitively: so does this.
    if (ctx.path.slice(0, 4).toLowerCase() === '/v1/') ctx.set('Cache-Control', 'no-store');
  };
}

/** Per operation: label, authenticate, validate parameters, headers and body with the document's schemas. */
function operationMiddleware(operation: Operation, tokens: TokenVerifier, bodyLimit: number): Koa.Middleware<IngressState> {
  return async (ctx, next) => {
    const c = ctx as IngressContext;
    c.state.route = operation.path;
    if (operation.authenticated) c.state.customer = (await tokens.verify(bearerToken(c.get('Authorization') || undefined))).customer;
    const pathErrors = operation.pathParams?.(c.params) ?? [];
    if (pathErrors.length > 0)
      throw new HttpProblem('validation-failed', 'path parameters do not match the schema', { extensions: { errors: pathErrors } });
    const queryErrors = operation.queryParams?.({ ...c.query }) ?? [];
    if (queryErrors.length > 0)
      throw new HttpProblem('validation-failed', 'query parameters do not match the schema', { extensions: { errors: queryErrors } });
    if (operation.requiredHeaders.includes('idempotency-key')) {
      const header = c.get('Idempotency-Key');
      if (header === '')
        throw new HttpProblem(
          'idempotency-key-required',
          `${operation.method} ${operation.path} needs an Idempotency-Key header (1-255 visible ASCII characters)`,
        );
      if (parseIdempotencyKey(header) === undefined) {
        throw new HttpProblem('validation-failed', 'Idempotency-Key must be 1-255 visible ASCII characters', {
          extensions: { errors: [{ pointer: '#/header/Idempotency-Key', detail: 'must be 1-255 visible ASCII characters' }] },
        });
      }
    }
    if (operation.body !== undefined) {
      const body = await readJsonBody(c.req, bodyLimit);
      if (body === undefined) {
        if (operation.body.required)
          throw new HttpProblem('validation-failed', 'a JSON request body is required', {
            extensions: { errors: [{ pointer: '#', detail: 'is required' }] },
          });
      } else {
        const errors = operation.body.check(body);
        if (errors.length > 0)
          throw new HttpProblem('validation-failed', 'request body does not match the schema', { extensions: { errors } });
        c.state.body = body;
      }
    }
    await next();
  };
}
