/**
 * The jobs against the real stack: engines and an ingress started as processes (the way pods run
 * them), real Postgres, Redis, NATS and Kafka. Stress runs each scenario through the REST API;
 * verify then holds Postgres, the topic and the response logs to every invariant.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { LocalStack } from '../../../src/jobs/local-stack.js';
import { DEFAULT_SCENARIO_SETTINGS, type ScenarioSettings } from '../../../src/jobs/stress/scenarios.js';
import { StressRun, type StressOptions } from '../../../src/jobs/stress/stress.js';
import { waitForShards } from '../../../src/jobs/wait.js';
import { verifyEvent } from '../../../src/jobs/verify/verify.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

const config = testConfig();
const pool = await testDatabase();
t.teardown(() => pool.end());
const spec = await provisionTestEvent(pool, { layout: testLayout({ sections: 2, rows: 10, seats: 20 }), shardCount: 4, customerLimit: 6 });
const dir = mkdtempSync(join(tmpdir(), 'stress-test-'));
const stack = new LocalStack({ env: { LOG_LEVEL: 'warn' }, logDir: dir });
t.teardown(() => stack.stopAll());
process.once('exit', () => stack.killAllNow());
const fast = { SENTINEL_LEASE_TTL_MS: '2000', SENTINEL_REBALANCE_INTERVAL_MS: '250' };
await Promise.all([stack.startEngine(spec.eventId, fast), stack.startEngine(spec.eventId, fast)]);
const ingress = await stack.startIngress();
await waitForShards(pool, spec.eventId, 30_000);

let runs = 0;
const stress = (scenario: Partial<ScenarioSettings> & Pick<ScenarioSettings, 'scenario'>, options: Partial<StressOptions> = {}) => {
  const runId = `it-${process.pid}-${++runs}`;
  return new StressRun({
    eventId: spec.eventId,
    targets: [ingress.url],
    scenario: { ...DEFAULT_SCENARIO_SETTINGS, thinkMs: { min: 0, max: 20 }, ...scenario },
    buyers: 200,
    mode: 'closed',
    concurrency: 100,
    rate: 0,
    durationS: 30,
    graceS: 10,
    retries: 5,
    maxRetryDelayMs: 1000,
    timeoutMs: 5000,
    seed: runs,
    runId,
    tokens: { secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience, ttlS: 3600 },
    logPath: join(dir, `${runId}.jsonl`),
    ...options,
  }).run();
};
const logs: string[] = [];
let sold = 0;

t.test('hot seat: exactly one buyer gets the seat, everyone else a fast 409', async (t) => {
  const report = await stress({ scenario: 'hot-seat', seat: 'B-5-5' }, { buyers: 400, concurrency: 200 });
  logs.push(report.log!);
  t.same(report.status, { '201': 1, '409': 399 });
  t.equal(report.seats_sold, 1);
  t.same(report.buyers.outcomes, { lost: 399, reserved: 1 });
  t.equal(report.requests, 400);
  t.ok(report.throughput_rps > 0 && report.duration_s > 0);
  t.equal(report.latency_ms.count, 400);
  t.ok(report.latency_ms.p50 <= report.latency_ms.p99 && report.latency_ms.p99 <= report.latency_ms.max);
  t.equal(report.loser_latency_ms.count, 399);
  sold += report.seats_sold;
});

t.test('the CLI: --json carries the fields a pipeline reads; bad flags exit 2', async (t) => {
  const run = promisify(execFile);
  const { stdout } = await run(
    process.execPath,
    [
      'bin/sentinel.js',
      'stress',
      '--event',
      spec.eventId,
      '--target',
      ingress.url,
      '--scenario',
      'hot-seat',
      '--seat',
      'A-1-1',
      '--buyers',
      '50',
      '--json',
      '--log',
      'none',
    ],
    { env: process.env },
  );
  const report = JSON.parse(stdout) as Record<string, unknown> & { latency_ms: Record<string, number>; status: Record<string, number> };
  for (const key of ['scenario', 'requests', 'status', 'throughput_rps', 'latency_ms', 'duration_s']) t.ok(key in report, key);
  for (const key of ['p50', 'p90', 'p99', 'max']) t.type(report.latency_ms[key], 'number');
  t.equal(report['scenario'], 'hot-seat');
  t.equal(report.status['201'], 1);
  sold += 1;
  const refused = await run(process.execPath, ['bin/sentinel.js', 'stress', '--event', 'x', '--target', 'http://10.1.2.3:8080'], {
    env: process.env,
  }).catch((e: { code: number; stderr: string }) => e);
  t.equal((refused as { code: number }).code, 2);
  t.match((refused as { stderr: string }).stderr, /--allow-remote/);
});

t.test('flash sale: hold, think, confirm or release; no 5xx', async (t) => {
  const report = await stress({ scenario: 'flash-sale', seatLimit: 150, confirmRate: 0.7, attempts: 2 }, { buyers: 400 });
  logs.push(report.log!);
  t.notOk(
    Object.keys(report.status).some((s) => s === '0' || s.startsWith('5')),
    `statuses ${JSON.stringify(report.status)}`,
  );
  const outcomes = report.buyers.outcomes;
  t.ok((outcomes['reserved'] ?? 0) > 50, `reserved ${outcomes['reserved']}`);
  t.ok((outcomes['released'] ?? 0) > 10, `released ${outcomes['released']}`);
  t.ok((outcomes['lost'] ?? 0) > 0, 'more buyers than seats: some lose');
  t.ok(report.seats_sold <= 150);
  t.ok(report.latency_by_op_ms['hold'] && report.latency_by_op_ms['confirm'] && report.latency_by_op_ms['release']);
  sold += report.seats_sold;
});

t.test('best available: 2-6 adjacent seats per buyer', async (t) => {
  const report = await stress({ scenario: 'best-available', confirmRate: 1 }, { buyers: 100, concurrency: 50 });
  logs.push(report.log!);
  t.notOk(
    Object.keys(report.status).some((s) => s === '0' || s.startsWith('5')),
    `statuses ${JSON.stringify(report.status)}`,
  );
  t.ok((report.buyers.outcomes['reserved'] ?? 0) > 20);
  sold += report.seats_sold;
});

t.test('open loop: arrivals at a rate, bounded by duration', async (t) => {
  const started = Date.now();
  const report = await stress(
    { scenario: 'flash-sale', confirmRate: 0 },
    { mode: 'open', rate: 200, durationS: 1.5, buyers: 100_000, concurrency: 500 },
  );
  logs.push(report.log!);
  t.ok(Date.now() - started < 15_000, 'stops by itself');
  t.ok(report.buyers.started >= 250 && report.buyers.started <= 320, `${report.buyers.started} buyers in 1.5 s at 200/s`);
  t.equal(report.rate, 200);
});

t.test('verify: every invariant holds over Postgres, the topic and the response logs', async (t) => {
  const report = await verifyEvent({
    eventId: spec.eventId,
    pool,
    logs,
    kafka: { brokers: config.kafkaBrokers, topic: config.reservationsTopic },
    ttlSlackMs: 2000,
    settleTimeoutMs: 30_000,
    topicTimeoutMs: 30_000,
    log: silentLogger,
  });
  t.equal(report.ok, true, JSON.stringify(report.violations, null, 2));
  t.equal(report.counts.inventory.seats.sold, sold, 'the database sold what the clients were told');
  t.equal(report.counts.topic?.unique, report.counts.inventory.reservations, 'every reservation is on the topic');
  t.equal(
    report.counts.log?.acknowledged.reservations,
    report.counts.inventory.reservations - 1,
    'every reservation was answered (the CLI run kept no log)',
  );
  t.ok(report.checks.every((c) => !c.skipped));
});
