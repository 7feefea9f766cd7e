/**
 * A stress run against loopback HTTP servers: a stop before it began, sales counted without a log,
 * attempts the run cuts itself, the progress rate by the clock, and buyers spread over targets so
 * that no request waits in the client for a connection.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import t, { type Test } from 'tap';
import { DEFAULT_SCENARIO_SETTINGS } from '../../../src/jobs/stress/scenarios.js';
import { SLOT_MS, StressStats } from '../../../src/jobs/stress/stats.js';
import { leastLoaded, StressRun, type StressOptions } from '../../../src/jobs/stress/stress.js';

/** A loopback server answering with `handle`; counts requests and the most in flight at once. */
async function server(
  t: Test,
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; requests: () => number; peak: () => number }> {
  let requests = 0;
  let inFlight = 0;
  let peak = 0;
  const http = createServer((req, res) => {
    requests += 1;
    peak = Math.max(peak, ++inFlight);
    res.once('close', () => (inFlight -= 1));
    req.resume();
    req.on('end', () => handle(req, res));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    http.closeAllConnections();
    http.close();
  });
  return { url: `http://127.0.0.1:${(http.address() as { port: number }).port}`, requests: () => requests, peak: () => peak };
}

/** Every request is a reservation of A-1-1, granted. */
const sold = (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(201, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ reservationId: 'r', holdId: 'h', seats: ['A-1-1'], confirmedAt: new Date().toISOString() }));
};

const options = (targets: string[], more: Partial<StressOptions> = {}): StressOptions => ({
  eventId: 'ev',
  targets,
  scenario: { ...DEFAULT_SCENARIO_SETTINGS, scenario: 'hot-seat' },
  buyers: 10,
  mode: 'closed',
  concurrency: 2,
  rate: 0,
  durationS: 30,
  graceS: 5,
  retries: 0,
  maxRetryDelayMs: 100,
  timeoutMs: 5000,
  seed: 1,
  runId: 'run',
  tokens: { secret: 's', issuer: 'i', audience: 'a', ttlS: 3600 },
  inventory: { sections: [{ id: 'A', rows: [{ id: '1', seats: 10 }] }], pools: [] },
  ...more,
});

t.test('a run given a signal that already fired stops at once: no discovery, no connection, no clock', async (t) => {
  const target = await server(t, sold);
  let started = false;
  // No inventory: discovery would be its first request.
  const { inventory: _inventory, ...rest } = options([target.url]);
  const run = new StressRun({ ...rest, signal: AbortSignal.abort(), onStart: () => (started = true) });
  const report = await run.run();
  t.equal(report.aborted, true);
  t.equal(report.requests, 0);
  t.equal(report.buyers.started, 0);
  t.equal(target.requests(), 0, 'the server heard nothing (no discovery, no probes, no buyer)');
  t.equal(started, false, 'the clock never started');
});

t.test('seats sold are counted without a response log (--log none)', async (t) => {
  const target = await server(t, sold);
  const report = await new StressRun(options([target.url])).run();
  t.equal(report.log, null);
  t.equal(report.requests, 10);
  t.equal(report.seats_sold, 10, 'every 201 to a reserve sold its seat');
});

t.test('attempts the run cuts itself are counted apart, not as failed requests', async (t) => {
  // The server never answers: the grace period runs out and the run cuts the attempts in flight.
  const target = await server(t, () => undefined);
  const report = await new StressRun(options([target.url], { buyers: 3, concurrency: 3, durationS: 0.2, graceS: 0.2 })).run();
  t.equal(report.aborted, true);
  t.equal(report.cut, 3, 'the three attempts in flight were cut');
  t.equal(report.requests, 0, 'and are not requests');
  t.same(report.status, {}, 'nor statuses');
  t.same(report.errors, {}, 'nor errors');
  t.equal(
    report.timeline.reduce((sum, slot) => sum + slot.failed, 0),
    0,
    'nor failures in the timeline',
  );
  t.same(report.buyers.outcomes, { aborted: 3 });
});

t.test('the progress rate is taken by the clock: a stall shows as no answers, not the last healthy second', async (t) => {
  const stats = new StressStats();
  stats.startedAt = 1_000_000;
  // 10 answers in each of the first four slots (the first second).
  for (let slot = 0; slot < 4; slot++)
    for (let i = 0; i < 10; i++) stats.attempt('reserve', 201, 1, stats.startedAt + slot * SLOT_MS + 100, undefined, false);
  t.equal(stats.recentRps(stats.startedAt + 1000), 40, 'a second of 40 answers: 40/s');
  t.equal(stats.recentRps(stats.startedAt + 1100), 40, 'the slot going on is not counted yet');
  t.equal(stats.recentRps(stats.startedAt + 500), 40, 'within the first second: the slots so far, per second');
  t.equal(stats.recentRps(stats.startedAt + 1250), 30, 'a slot without answers counts 0');
  t.equal(stats.recentRps(stats.startedAt + 3000), 0, 'two seconds of stall: 0/s');
  t.equal(stats.recentRps(stats.startedAt + 100), 0, 'no complete slot yet');
});

t.test('a buyer starts on the target with the fewest buyers in flight', async (t) => {
  t.equal(leastLoaded([0, 0, 0], 4), 1, 'among equals, targets[i % n]');
  t.equal(leastLoaded([3, 1, 2], 0), 1);
  t.equal(leastLoaded([2, 2, 1], 1), 2);
  t.equal(leastLoaded([1, 2, 1], 1), 2, 'the first least loaded from i % n');
});

t.test('with a slow and a fast target no request waits in the client for a connection', async (t) => {
  const delayMs = 300;
  const slow = await server(t, (req, res) => void setTimeout(() => sold(req, res), delayMs));
  const fast = await server(t, sold);
  const concurrency = 40;
  const report = await new StressRun(options([slow.url, fast.url], { buyers: 400, concurrency })).run();
  t.equal(report.requests, 400);
  t.same(report.status, { '201': 400 });
  // One connection per buyer in flight: concurrency / 2 each, opened (and probed) before the clock.
  t.ok(slow.peak() <= concurrency / 2, `at most ${concurrency / 2} requests at once on the slow target (${slow.peak()})`);
  // A request that waited for a connection would show the wait as server latency: another delay at least.
  t.ok(
    report.latency_ms.max < delayMs + 250,
    `no request took much more than the slow server's ${delayMs} ms (${report.latency_ms.max} ms)`,
  );
});

t.test('a retry waits at least what Retry-After asked (jitter only adds to it), up to --max-retry-delay', async (t) => {
  // The first reservation of each buyer is answered 503 with Retry-After: 1; the retry is sold.
  const askedAt = new Map<string, number[]>(); // by Idempotency-Key: a buyer's attempts
  const target = await server(t, (req, res) => {
    if (req.method !== 'POST') return sold(req, res); // the run's look at the target first
    const key = String(req.headers['idempotency-key']);
    const times = askedAt.get(key) ?? [];
    times.push(performance.now());
    askedAt.set(key, times);
    if (times.length > 1) return sold(req, res);
    res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '1' });
    res.end(JSON.stringify({ type: 'https://sentinel.dev/problems/shard-unavailable', status: 503 }));
  });
  const report = await new StressRun(
    options([target.url], { buyers: 4, concurrency: 4, retries: 1, maxRetryDelayMs: 5000, durationS: 10, graceS: 5 }),
  ).run();
  t.same(report.status, { 201: 4, 503: 4 }, 'each buyer was refused once, then sold');
  t.equal(askedAt.size, 4, 'four buyers, each retrying under its key');
  for (const [key, [first, retry]] of askedAt) {
    const waited = retry! - first!;
    t.ok(waited >= 990, `${key}: retried ${Math.round(waited)} ms after its refusal, not before Retry-After`);
  }
});
