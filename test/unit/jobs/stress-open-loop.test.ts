/** The open-loop load generator against a loopback HTTP server that answers every reserve at once. */
import { createServer } from 'node:http';
import t from 'tap';
import { DEFAULT_SCENARIO_SETTINGS } from '../../../src/jobs/stress/scenarios.js';
import { StressRun } from '../../../src/jobs/stress/stress.js';

t.test('open loop: arrivals the generator sent late are measured (schedule lag), not hidden', async (t) => {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ reservationId: 'r', holdId: 'h', seats: ['A-1-1'], confirmedAt: new Date().toISOString() }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const run = new StressRun({
    eventId: 'ev',
    targets: [url],
    scenario: { ...DEFAULT_SCENARIO_SETTINGS, scenario: 'hot-seat' },
    buyers: 1000,
    mode: 'open',
    concurrency: 1000,
    rate: 500,
    durationS: 2,
    graceS: 2,
    retries: 0,
    maxRetryDelayMs: 100,
    timeoutMs: 2000,
    seed: 1,
    runId: 'lag',
    tokens: { secret: 's', issuer: 'i', audience: 'a', ttlS: 3600 },
    inventory: { sections: [{ id: 'A', rows: [{ id: '1', seats: 10 }] }], pools: [] },
    // Half a second in, the generator is stalled for 400 ms (a GC, a CPU it shares with the system under test).
    onStart: () =>
      void setTimeout(() => {
        const end = Date.now() + 400;
        while (Date.now() < end);
      }, 500),
  });
  const report = await run.run();
  t.ok(report.requests > 500, `${report.requests} requests`);
  const lag = report.schedule_lag_ms;
  t.ok(lag !== undefined && lag.max >= 350, `the stall shows as arrivals sent late (max ${lag?.max} ms)`);
  t.ok(lag !== undefined && lag.count === report.buyers.started + report.buyers.shed, 'one figure per arrival');
});
