/**
 * Expected dependency trouble is a 503 with Retry-After, never a 500: a Redis that cannot take
 * writes (a read-only replica after a failover, a replica whose master is down), a Postgres pool
 * with no connection to give within its timeout, statements cut off by their timeouts. Real
 * servers: a Redis replica started for this file (its master unreachable) and the local Postgres.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import pg from 'pg';
import { translatePgError } from '../../../src/adapters/postgres/errors.js';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import { DependencyError } from '../../../src/errors.js';
import { createPgPool } from '../../../src/adapters/postgres/pool.js';
import { REDIS_COMMAND_TIMEOUT_MS } from '../../../src/ingress/command-gate.js';
import { READ_WAIT_MS } from '../../../src/ingress/inventory-reads.js';
import type { OpenApi } from '../../../src/ingress/openapi.js';
import { PROBLEM_BASE } from '../../../src/ingress/problems.js';
import { silentLogger } from '../../../src/log.js';
import { freePort, provisionTestEvent, testDatabase, waitFor } from '../../support/stack.js';
import { tcpRelay } from '../../support/tcp-relay.js';
import { call, config, eventPath, startHarness, type Exchange } from './harness.js';

const pool = await testDatabase();
t.teardown(() => pool.end());
const spec = await provisionTestEvent(pool, { shardCount: 1 });

function expect503(t: Test, response: Exchange, operationId: string, api: OpenApi): void {
  t.equal(response.status, 503, `${operationId} → 503 (${response.text.slice(0, 200)})`);
  t.equal(response.body?.type, PROBLEM_BASE + 'dependency-unavailable');
  t.equal(response.headers.get('retry-after'), '1');
  t.same(api.checkResponse(operationId, 503, response.body, response.headers), [], 'as documented');
}

/** A 503 as documented, answered within `waitMs` (the dependency's own bound) and a second of slack — not a hang. */
async function expect503Within(t: Test, waitMs: number, operationId: string, api: OpenApi, send: () => Promise<Exchange>): Promise<void> {
  const started = performance.now();
  const response = await send();
  const tookMs = performance.now() - started;
  expect503(t, response, operationId, api);
  t.ok(tookMs < waitMs + 1000, `${operationId} answered after ${Math.round(tookMs)} ms, the bound being ${waitMs}`);
}

t.test('a Redis that cannot take writes (READONLY, MASTERDOWN) → 503, not 500', async (t) => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-replica-'));
  // A replica of a master that does not exist: it serves reads, refuses writes with READONLY.
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--replicaof', '127.0.0.1', '1'],
    { stdio: 'ignore' },
  );
  const started = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.once('spawn', () => resolve(true));
  });
  if (!started) {
    t.fail('redis-server cannot be started (hack/infra.sh installs it)');
    return;
  }
  t.teardown(() => {
    server.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  const replica = createRedis({ url: `redis://127.0.0.1:${port}`, log: silentLogger, name: 'replica-test' });
  await waitFor('the replica to accept connections', () => connectRedis(replica).then(() => true), 10_000, 100);
  const h = await startHarness(pool, { redis: replica });
  t.teardown(async () => {
    await h.close();
    replica.disconnect();
  });
  const alice = await h.token('alice');
  const hold = () =>
    call(h.url, 'POST', eventPath(spec, '/holds'), { token: alice, key: `k-${Math.random()}`, body: { seats: ['A-1-1'] } });
  expect503(t, await hold(), 'createHold', h.app.openapi);

  await replica.config('SET', 'replica-serve-stale-data', 'no');
  const masterDown = await hold();
  expect503(t, masterDown, 'createHold', h.app.openapi);
  // The key is only peeked at when the seat is known sold or the sale is closed: the same mapping.
  const closed = await provisionTestEvent(pool, {
    shardCount: 1,
    saleOpensAt: new Date(Date.now() - 7_200_000),
    saleClosesAt: new Date(Date.now() - 3_600_000),
  });
  const peeked = await call(h.url, 'POST', `/v1/events/${closed.eventId}/seats/A-1-1/reserve`, { token: alice, key: 'k-closed' });
  expect503(t, peeked, 'reserveSeat', h.app.openapi);
});

t.test('a Redis that stops answering (a link that drops packets) → 503 within the command timeout, not a hang', async (t) => {
  const redisPort = Number(new URL(config.redisUrl).port);
  const relay = await tcpRelay('127.0.0.1', redisPort);
  t.teardown(() => relay.close());
  // Made as the ingress makes its client (sentinel ingress), behind a link the test can silence.
  const redis = createRedis({
    url: `redis://127.0.0.1:${relay.port}`,
    log: silentLogger,
    name: 'silent-redis-test',
    autoPipelining: true,
    commandTimeoutMs: REDIS_COMMAND_TIMEOUT_MS,
  });
  await connectRedis(redis);
  const h = await startHarness(pool, { redis });
  t.teardown(async () => {
    await h.close();
    redis.disconnect();
  });
  const alice = await h.token('alice');
  relay.blackhole();
  await expect503Within(t, REDIS_COMMAND_TIMEOUT_MS, 'createHold', h.app.openapi, () =>
    call(h.url, 'POST', eventPath(spec, '/holds'), { token: alice, key: 'k-silent', body: { seats: ['A-1-2'] } }),
  );
});

t.test('a Postgres that stops answering → 503 within the read wait, not a hang for the query timeout', async (t) => {
  const target = new URL(config.databaseUrl);
  const relay = await tcpRelay(target.hostname, Number(target.port));
  t.teardown(() => relay.close());
  const relayedUrl = new URL(config.databaseUrl);
  relayedUrl.port = String(relay.port);
  // The ingress's pool as `sentinel ingress` makes it (its query timeout is 15 s), behind a link the test can silence.
  const relayed = createPgPool({ url: relayedUrl.toString(), max: 4, log: silentLogger });
  const h = await startHarness(relayed);
  t.teardown(async () => {
    await h.close();
    relay.restore();
    await relayed.end();
  });
  const alice = await h.token('alice');
  // The event's settings are read (and cached) while Postgres answers.
  t.equal((await call(h.url, 'GET', eventPath(spec, '/availability'), { token: alice })).status, 200);
  relay.blackholeReplies();
  for (const [operationId, method, path] of [
    ['confirmHold', 'POST', eventPath(spec, '/holds/h_elsewhere/confirm')], // a hold this ingress did not make: looked up
    ['getReservation', 'GET', '/v1/reservations/r_somewhere'],
  ] as const) {
    await expect503Within(t, READ_WAIT_MS, operationId, h.app.openapi, () =>
      call(h.url, method, path, { token: alice, key: `k-${operationId}` }),
    );
  }
});

t.test('a Postgres pool with no connection to give within its timeout → 503, not 500', async (t) => {
  const small = new pg.Pool({ connectionString: config.databaseUrl, max: 1, connectionTimeoutMillis: 200 });
  const held = await small.connect(); // the only connection, checked out for the whole test
  const h = await startHarness(small);
  t.teardown(async () => {
    await h.close();
    held.release();
    await small.end();
  });
  const alice = await h.token('alice');
  expect503(t, await call(h.url, 'GET', '/v1/reservations/r_nothing', { token: alice }), 'getReservation', h.app.openapi);
  expect503(t, await call(h.url, 'GET', eventPath(spec, '/availability'), { token: alice }), 'getAvailability', h.app.openapi);
});

t.test('statements cut off by their timeouts are retryable dependency errors', async (t) => {
  const timeouts = new pg.Pool({ connectionString: config.databaseUrl, max: 2, statement_timeout: 50 });
  t.teardown(() => timeouts.end());
  // statement_timeout: the server cancels it with SQLSTATE 57014.
  const cancelled = await timeouts.query('SELECT pg_sleep(2)').then(
    () => undefined,
    (e: unknown) => e,
  );
  t.equal((cancelled as { code?: string }).code, '57014');
  t.ok(translatePgError(cancelled, 'sleep') instanceof DependencyError, 'statement timeout → DependencyError');

  const client = new pg.Client({ connectionString: config.databaseUrl, query_timeout: 50 });
  await client.connect();
  t.teardown(() => client.end().catch(() => undefined));
  // query_timeout: the driver gives up waiting for the answer.
  const unanswered = await client.query('SELECT pg_sleep(0.5)').then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match((unanswered as Error).message, /Query read timeout/);
  t.ok(translatePgError(unanswered, 'sleep') instanceof DependencyError, 'query timeout → DependencyError');

  // 53300 too_many_connections is in class 53 (insufficient resources).
  const tooMany = Object.assign(new Error('sorry, too many clients already'), { code: '53300' });
  t.ok(translatePgError(tooMany, 'connect') instanceof DependencyError, 'too many connections → DependencyError');
  t.notOk(
    translatePgError(Object.assign(new Error('syntax'), { code: '42601' }), 'q') instanceof DependencyError,
    'a bad statement is not',
  );
});
