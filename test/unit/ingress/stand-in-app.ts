/**
 * The ingress app over HTTP with stand-ins for Redis, NATS and Postgres (the integration tests run
 * the real ones), for the tests of what needs no dependency to answer: health, connections.
 */
import type { Test } from 'tap';
import type { NatsConnection } from 'nats';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { createIngressApp } from '../../../src/ingress/app.js';
import { createTokenVerifier, mintToken } from '../../../src/ingress/auth.js';
import { createIngressMetrics } from '../../../src/ingress/metrics.js';
import { serveIngress } from '../../../src/ingress/server.js';
import { silentLogger, type Logger } from '../../../src/log.js';

const SECRET = 'x'.repeat(32);

/** A token the stand-in app accepts. */
export const standInToken = (customer: string) =>
  mintToken({ secret: SECRET, issuer: 'sentinel', audience: 'sentinel', subject: customer, ttlS: 600 });

/** Stand-ins for the three clients, whose state the test sets. */
export function standIns() {
  const state = { natsClosed: false, redisStatus: 'ready', redisDown: false, pgEnding: false };
  const nc = {
    isClosed: () => state.natsClosed,
    flush: async () => {
      if (state.natsClosed) throw new Error('closed');
    },
    subscribe: () => ({ unsubscribe: () => undefined }),
  };
  const redis = {
    get status() {
      return state.redisStatus;
    },
    defineCommand: () => undefined,
    ping: async () => {
      if (state.redisDown) throw new Error('connect ECONNREFUSED 10.0.0.5:6379');
      return 'PONG';
    },
  };
  const pool = {
    get ending() {
      return state.pgEnding;
    },
    query: async () => ({ rows: [] }),
  };
  return { state, nc: nc as unknown as NatsConnection, redis: redis as unknown as Redis, pg: pool as unknown as pg.Pool };
}

export async function startStandInApp(
  t: Test,
  options: { dependencyCheckIntervalMs?: number; now?: () => number; log?: Logger; requestTimeoutMs?: number } = {},
) {
  const deps = standIns();
  const app = createIngressApp({
    log: options.log ?? silentLogger,
    redis: deps.redis,
    nc: deps.nc,
    pg: deps.pg,
    metrics: createIngressMetrics({ defaultMetrics: false }),
    tokens: createTokenVerifier({ secret: SECRET, issuer: 'sentinel', audience: 'sentinel' }),
    settings: {
      shardTimeoutMs: 1000,
      idempotencyTtlS: 60,
      closeSettleMs: 1000,
      ...(options.dependencyCheckIntervalMs === undefined ? {} : { dependencyCheckIntervalMs: options.dependencyCheckIntervalMs }),
    },
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const running = await serveIngress(app, {
    port: 0,
    host: '127.0.0.1',
    log: silentLogger,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  });
  t.teardown(() => running.close({ graceMs: 100 }));
  const get = async (path: string) => {
    const response = await fetch(running.url + path);
    const text = await response.text();
    const json = response.headers.get('content-type')?.startsWith('application/json') === true;
    return { status: response.status, headers: response.headers, text, body: json ? (JSON.parse(text) as unknown) : undefined };
  };
  return { ...deps, app, running, get };
}
