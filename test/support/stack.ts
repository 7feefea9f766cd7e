import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Test } from 'tap';
import { createPgPool } from '../../src/adapters/postgres/pool.js';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { provisionEvent, type EventSpec } from '../../src/engine/provision.js';
import { freePort } from '../../src/jobs/local-stack.js';
import { waitFor } from '../../src/jobs/wait.js';
import { silentLogger } from '../../src/log.js';
import { testConfig, uniqueName } from './env.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/sentinel.js', import.meta.url));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polling until something holds: one implementation, shared with the jobs and the benches. */
export { waitFor };

/** A free loopback port: one implementation, shared with the jobs and the benches. */
export { freePort };

/** A migrated database pool for a test file. */
export async function testDatabase(): Promise<pg.Pool> {
  const pool = createPgPool({ url: testConfig().databaseUrl, max: 8, log: silentLogger });
  await migrate(pool, silentLogger);
  return pool;
}

/**
 * A database of its own (dropped afterwards), migrated: its tables and statistics are the test's
 * alone, and so are its advisory locks.
 */
export async function ownDatabase(t: Test, prefix = 'own'): Promise<pg.Pool> {
  const admin = await testDatabase();
  t.teardown(() => admin.end());
  const name = uniqueName(prefix)
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_');
  await admin.query(`CREATE DATABASE ${name}`);
  t.teardown(() => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  const url = new URL(testConfig().databaseUrl);
  url.pathname = `/${name}`;
  const pool = createPgPool({ url: url.toString(), max: 2, log: silentLogger });
  t.teardown(() => pool.end());
  await migrate(pool, silentLogger);
  return pool;
}

/** A small assigned-seating layout: `sections` sections × `rows` rows × `seats` seats, plus one GA pool. */
export function testLayout(options: { sections?: number; rows?: number; seats?: number; pool?: number } = {}): unknown {
  const sections = Array.from({ length: options.sections ?? 1 }, (_, s) => ({
    id: String.fromCharCode(65 + s),
    rows: Array.from({ length: options.rows ?? 8 }, (_, r) => ({ id: String(r + 1), seats: options.seats ?? 20 })),
  }));
  return { sections, pools: options.pool ? [{ id: 'GA', capacity: options.pool }] : [] };
}

/** Provisions a fresh event (unique id) that is on sale now. */
export async function provisionTestEvent(pool: pg.Pool, overrides: Partial<EventSpec> = {}): Promise<EventSpec> {
  const now = Date.now();
  const spec: EventSpec = {
    eventId: uniqueName('ev').toLowerCase(),
    displayName: 'Test event',
    layout: testLayout(),
    shardCount: 2,
    holdTtlMs: 60_000,
    customerLimit: 8,
    admissionRate: 100_000,
    saleOpensAt: new Date(now - 60_000),
    saleClosesAt: new Date(now + 3_600_000),
    ...overrides,
  };
  const outcome = await provisionEvent(pool, spec);
  if (outcome.status !== 'created') throw new Error(`provisioning failed: ${JSON.stringify(outcome)}`);
  return spec;
}

/** An engine child process, started the way a pod would start it. */
export interface EngineProcess {
  readonly id: string;
  readonly httpPort: number;
  readonly child: ChildProcess;
  /** Everything it logged (JSON lines). */
  readonly logs: string[];
  readonly exited: Promise<number | null>;
  /**
   * A metric from its /metrics: the first series of `name`, or — given `labels` — the sum of the
   * series that carry all of them (NaN when there is none).
   */
  metric(name: string, labels?: Readonly<Record<string, string>>): Promise<number>;
  /** A counter from its /metrics (`scrapeCount`): 0 while it has no series (a labelled counter appears at its first increment). */
  count(name: string, labels?: Readonly<Record<string, string>>): Promise<number>;
  /** Its log records (the JSON lines) from its `from`th line on; lines that are not JSON are skipped. */
  records(from?: number): Record<string, unknown>[];
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | null>;
}

/**
 * A metric in a Prometheus text exposition: the first series of `name`, or — given `labels` — the
 * sum of the series that carry all of them (NaN when there is none).
 */
export function metricIn(text: string, name: string, labels?: Readonly<Record<string, string>>): number {
  const series = text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  const value = (line: string) => Number(line.split(' ').pop());
  if (labels === undefined) return series[0] === undefined ? NaN : value(series[0]);
  const matching = series.filter((line) => Object.entries(labels).every(([key, v]) => line.includes(`${key}="${v}"`)));
  return matching.length === 0 ? NaN : matching.reduce((sum, line) => sum + value(line), 0);
}

/** A metric of the process serving `/metrics` at `baseUrl`, as `metricIn` reads it. */
export async function scrapeMetric(baseUrl: string, name: string, labels?: Readonly<Record<string, string>>): Promise<number> {
  return metricIn(await (await fetch(`${baseUrl}/metrics`)).text(), name, labels);
}

/** A counter of the process at `baseUrl`: the sum of its series carrying all `labels` (all when none), 0 while it has none. */
export async function scrapeCount(baseUrl: string, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const value = await scrapeMetric(baseUrl, name, labels);
  return Number.isNaN(value) ? 0 : value;
}

const running = new Set<EngineProcess>();
process.on('exit', () => {
  for (const engine of running) engine.child.kill('SIGKILL');
});

/**
 * Spawns `sentinel engine` for one event and waits until it is ready. `command` is the argv that
 * runs `sentinel`: the checkout's TypeScript by default, a compiled build's for the benchmarks.
 */
export async function startEngine(
  eventId: string,
  env: Record<string, string> = {},
  command: readonly string[] = [process.execPath, CLI],
  /** Wait for /readyz (default), or only for /healthz: an engine that cannot do its rounds is never ready. */
  waitUntil: 'ready' | 'live' = 'ready',
): Promise<EngineProcess> {
  const id = env['SENTINEL_ENGINE_ID'] ?? uniqueName('engine');
  const httpPort = await freePort();
  const [node, ...prefix] = command;
  const child = spawn(node!, [...prefix, 'engine'], {
    cwd: ROOT,
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      SENTINEL_EVENT: eventId,
      SENTINEL_ENGINE_ID: id,
      SENTINEL_HTTP_PORT: String(httpPort),
      SENTINEL_LEASE_TTL_MS: '2000',
      SENTINEL_REBALANCE_INTERVAL_MS: '250',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let buffered = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    logs.push(...lines);
    if (process.env['SENTINEL_TEST_ENGINE_LOGS']) for (const line of lines) process.stderr.write(`[${id}] ${line}\n`);
  });
  child.stderr?.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const engine: EngineProcess = {
    id,
    httpPort,
    child,
    logs,
    exited,
    metric: (name, labels) => scrapeMetric(`http://127.0.0.1:${httpPort}`, name, labels),
    count: (name, labels) => scrapeCount(`http://127.0.0.1:${httpPort}`, name, labels),
    records(from = 0) {
      return logs.slice(from).flatMap((line) => {
        try {
          const value: unknown = JSON.parse(line);
          return value !== null && typeof value === 'object' ? [value as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      });
    },
    signal(signal) {
      child.kill(signal);
    },
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      running.delete(engine);
      return code;
    },
  };
  running.add(engine);
  void exited.then(() => running.delete(engine));
  await waitFor(
    `engine ${id} ${waitUntil}`,
    async () => {
      if (child.exitCode !== null) throw new Error(`engine exited with ${child.exitCode}: ${logs.slice(-5).join('\n')}`);
      return (await fetch(`http://127.0.0.1:${httpPort}/${waitUntil === 'ready' ? 'readyz' : 'healthz'}`)).ok;
    },
    30_000,
  );
  return engine;
}

/** Shard owners per the database (owner column), for assertions. */
export async function shardOwners(pool: pg.Pool, eventId: string): Promise<Map<number, string | null>> {
  const { rows } = await pool.query<{ shard: number; owner: string | null }>(
    'SELECT shard, owner FROM shards WHERE event_id = $1 ORDER BY shard',
    [eventId],
  );
  return new Map(rows.map((r) => [r.shard, r.owner]));
}

/** Waits until a group commit is waiting for a row lock (one the test holds in another transaction). */
export async function waitForBlockedCommit(pool: pg.Pool, what: string): Promise<void> {
  await waitFor(
    what,
    async () => {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%sentinel_commit_batch%'`,
      );
      return rows[0]!.n > 0 || undefined;
    },
    5000,
    10,
  );
}
