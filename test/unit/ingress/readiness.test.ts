/**
 * Readiness and liveness of an ingress process, without any dependency: liveness fails only for a
 * client closed for good and never while shutting down; the dependency checks run on a timer of
 * their own, sharing /readyz's cached probe, and stop when the process shuts down.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { READINESS_CACHE_MS, Readiness, livenessChecks, type DependencyCheck } from '../../../src/ingress/readiness.js';
import type { NatsConnection } from 'nats';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from '../../../src/log.js';

/** A logger whose lines are kept, parsed. */
function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

/** Waits until `condition` holds (every 5 ms, at most 2 s). */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 2 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A check that counts its calls and answers as told. */
function countingCheck(): { check: DependencyCheck; calls: number; fail: boolean } {
  const state = {
    calls: 0,
    fail: false,
    check: async () => {
      state.calls++;
      if (state.fail) throw new Error('refused by 10.0.0.7:4222');
    },
  };
  return state;
}

t.test('liveness: a client closed for good fails it, named in generic words, logged once', async (t) => {
  let natsOpen = true;
  const { log, lines } = capturingLogger();
  const readiness = new Readiness({ checks: {}, liveness: { nats: () => natsOpen, redis: () => true }, log });
  t.same(readiness.health(), { alive: true, shuttingDown: false, failed: {} });
  natsOpen = false;
  t.same(readiness.health(), { alive: false, shuttingDown: false, failed: { nats: 'failed: closed' } });
  t.same(readiness.health(), { alive: false, shuttingDown: false, failed: { nats: 'failed: closed' } }, 'and stays failed');
  const logged = lines.filter((line) => line.check === 'nats');
  t.equal(logged.length, 1, 'logged once, not at every probe');
  t.equal(logged[0]?.level, 50, 'at error');
});

t.test('liveness: while shutting down nothing fails it (the process drains NATS and closes its clients itself)', async (t) => {
  const readiness = new Readiness({ checks: {}, liveness: { nats: () => false } });
  readiness.markShuttingDown();
  t.same(readiness.health(), { alive: true, shuttingDown: true, failed: {} });
});

t.test('the standard liveness checks read the clients’ states: NATS closed, Redis ended, the pool ended', async (t) => {
  const nc = { closed: false, isClosed: () => nc.closed };
  const redis = { status: 'ready' };
  const pool = { ending: false };
  const checks = livenessChecks({
    nc: nc as unknown as NatsConnection,
    redis: redis as unknown as Redis,
    pg: pool as unknown as pg.Pool,
  });
  const readiness = new Readiness({ checks: {}, liveness: checks });
  t.ok(readiness.health().alive);
  redis.status = 'reconnecting';
  t.ok(readiness.health().alive, 'a Redis reconnecting mends by itself');
  nc.closed = true;
  redis.status = 'end';
  pool.ending = true;
  t.same(readiness.health().failed, { nats: 'failed: closed', redis: 'failed: closed', postgres: 'failed: closed' });
});

t.test('the dependency checks run on a timer, /readyz asked or not, and report every outcome', async (t) => {
  let clock = 1_000_000;
  const nats = countingCheck();
  const outcomes: [string, boolean][] = [];
  const readiness = new Readiness({ checks: { nats: nats.check }, now: () => clock, checked: (d, ok) => outcomes.push([d, ok]) });
  t.teardown(() => readiness.markShuttingDown());
  readiness.watch(10);
  t.ok(readiness.watching);
  await until(() => outcomes.length === 1);
  t.same(outcomes, [['nats', true]], 'checked at once');
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.equal(nats.calls, 1, 'ticks within the cache period take the cached probe');
  nats.fail = true;
  clock += READINESS_CACHE_MS;
  await until(() => outcomes.length === 2);
  t.same(outcomes[1], ['nats', false], 'a dependency gone is seen without a /readyz');
  nats.fail = false;
  clock += READINESS_CACHE_MS;
  await until(() => outcomes.length === 3);
  t.same(outcomes[2], ['nats', true], 'and its recovery too');
  const report = await readiness.report();
  t.same(report.checks, { nats: 'ok' });
  t.equal(nats.calls, 3, '/readyz took the probe of the timer');
  const timerOf = () => (readiness as unknown as { timer: NodeJS.Timeout | undefined }).timer;
  const timer = timerOf();
  readiness.watch(10);
  t.equal(timerOf(), timer, 'a second watch starts no second timer');
});

t.test('a probe still running is shared, whatever the clock says', async (t) => {
  let clock = 0;
  let answer: () => void = () => undefined;
  let calls = 0;
  const readiness = new Readiness({
    checks: {
      redis: () => {
        calls++;
        return new Promise<void>((resolve) => (answer = resolve));
      },
    },
    now: () => clock,
  });
  const first = readiness.report();
  clock += 5 * READINESS_CACHE_MS;
  const second = readiness.report();
  t.equal(calls, 1, 'no second check while the first runs');
  answer();
  t.same((await first).checks, { redis: 'ok' });
  t.same((await second).checks, { redis: 'ok' });
  clock += READINESS_CACHE_MS;
  const third = readiness.report();
  t.equal(calls, 2, 'once settled and stale, checked again');
  answer();
  await third;
});

t.test('shutting down stops the timer (no timer leaks past a graceful stop)', async (t) => {
  let clock = 0;
  const redis = countingCheck();
  const readiness = new Readiness({ checks: { redis: redis.check }, now: () => clock });
  readiness.watch(5);
  await until(() => redis.calls === 1);
  const timer = (readiness as unknown as { timer: NodeJS.Timeout }).timer;
  t.notOk(timer.hasRef(), 'the timer keeps no process alive');
  readiness.markShuttingDown();
  t.notOk(readiness.watching);
  clock += 10 * READINESS_CACHE_MS;
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.equal(redis.calls, 1, 'no check after shutting down');
  readiness.watch(5);
  t.notOk(readiness.watching, 'nor can it start again');
  t.same(await readiness.report(), { ready: false, dependenciesOk: false, checks: { process: 'shutting down' } });
});

t.test('untilBroken resolves once a part broke for good, and not while shutting down', async (t) => {
  let natsOpen = true;
  const readiness = new Readiness({ checks: {}, liveness: { nats: () => natsOpen } });
  const looking = readiness.untilBroken(10);
  let seen: unknown;
  void looking.broken.then((health) => (seen = health));
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(seen, undefined, 'nothing broken: still looking');
  natsOpen = false;
  await until(() => seen !== undefined);
  t.match(seen, { alive: false, failed: { nats: 'failed: closed' } });
  looking.stop();

  const closing = new Readiness({ checks: {}, liveness: { nats: () => false } });
  closing.markShuttingDown(); // the process closes its connections itself: not breakage
  const quiet = closing.untilBroken(10);
  let fired = false;
  void quiet.broken.then(() => (fired = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.notOk(fired);
  quiet.stop();
});
