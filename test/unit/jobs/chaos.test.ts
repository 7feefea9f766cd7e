import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import {
  chaosExitCode,
  ChaosRun,
  describePause,
  disruptionsOf,
  effectOf,
  FENCED_MESSAGE,
  FencedShards,
  Takeover,
  unmetOf,
  type ChaosOptions,
  type ChaosReport,
  type FaultResult,
  type PauseObservation,
  type SkippedFault,
} from '../../../src/jobs/chaos/chaos.js';
import { formatChaosReport, formatFault } from '../../../src/jobs/chaos/format.js';
import {
  chaosSchedule,
  DEFAULT_ORDER,
  defaultSchedule,
  FAULT_KINDS,
  PROCESS_FAULTS,
  parseSchedule,
} from '../../../src/jobs/chaos/schedule.js';
import { DEFAULT_SCENARIO_SETTINGS } from '../../../src/jobs/stress/scenarios.js';
import type { Slot } from '../../../src/jobs/stress/stats.js';

const all = { loadMs: 60_000, pauseMs: 7000, allowed: FAULT_KINDS };

t.test('schedules: explicit, sorted, with pause durations', async (t) => {
  t.same(parseSchedule('20s:redis-restart, 5s:engine-kill,10s:engine-pause=3s,12s:engine-pause', all), [
    { atMs: 5000, kind: 'engine-kill' },
    { atMs: 10_000, kind: 'engine-pause', durationMs: 3000 },
    { atMs: 12_000, kind: 'engine-pause', durationMs: 7000 },
    { atMs: 20_000, kind: 'redis-restart' },
  ]);
  t.same(parseSchedule('none', all), []);
  t.same(parseSchedule('1500ms:ingress-kill', all), [{ atMs: 1500, kind: 'ingress-kill' }]);
});

t.test('schedules: mistakes are refused with the reason', async (t) => {
  t.throws(() => parseSchedule('5s:engine-explode', all), /unknown fault engine-explode/);
  t.throws(() => parseSchedule('engine-kill', all), /OFFSET:KIND/);
  t.throws(() => parseSchedule('5s:redis-restart=3s', all), /only engine-pause takes a duration/);
  t.throws(() => parseSchedule('90s:engine-kill', all), /after the load ends/);
  const attached = { ...all, allowed: FAULT_KINDS.filter((k) => !PROCESS_FAULTS.includes(k)) };
  t.throws(() => parseSchedule('5s:engine-kill', attached), /--attach/);
  t.same(parseSchedule('5s:kafka-restart', attached), [{ atMs: 5000, kind: 'kafka-restart' }]);
});

t.test('the default schedule spreads every fault from 5 s to 10 s before the end', async (t) => {
  const schedule = parseSchedule('default', all);
  t.same(
    schedule.map((f) => f.kind),
    DEFAULT_ORDER,
  );
  t.equal(schedule[0]!.atMs, 5000);
  t.equal(schedule.at(-1)!.atMs, 50_000);
  t.ok(schedule.every((f, i) => i === 0 || f.atMs > schedule[i - 1]!.atMs));
  t.equal(schedule.find((f) => f.kind === 'engine-pause')?.durationMs, 7000);
  t.same(defaultSchedule(60_000, ['nats-restart'], 1000), [{ atMs: 5000, kind: 'nats-restart' }]);
  const attached = parseSchedule('default', { ...all, allowed: FAULT_KINDS.filter((k) => !PROCESS_FAULTS.includes(k)) });
  t.same(
    attached.map((f) => f.kind),
    ['redis-restart', 'nats-restart', 'postgres-restart', 'kafka-restart'],
  );
});

t.test('--attach: no fault of its own by default, and no restart of this machine’s services for a remote target', async (t) => {
  const loadMs = 60_000;
  const pauseMs = 7000;
  const local = { loadMs, pauseMs, attach: false, targets: ['http://127.0.0.1:8080'] };
  t.same(
    chaosSchedule(undefined, local).map((f) => f.kind),
    DEFAULT_ORDER,
    'locally, every kind of fault by default',
  );
  const remote = { loadMs, pauseMs, attach: true, targets: ['http://sentinel-ingress.sentinel.svc'] };
  t.same(chaosSchedule(undefined, remote), [], 'attached: none by default (the cluster’s chaos tool injects them)');
  t.same(chaosSchedule('none', remote), []);
  for (const faults of ['5s:redis-restart', '5s:postgres-restart,9s:kafka-restart', 'default'])
    t.throws(
      () => chaosSchedule(faults, remote),
      {
        name: 'UsageError',
        message: /would restart this machine's services \(through hack\/infra\.sh\), not those of http:\/\/sentinel-ingress/,
      },
      `${faults}: refused with a remote target`,
    );
  t.throws(
    () => chaosSchedule('5s:nats-restart', { ...remote, targets: ['http://127.0.0.1:8080', 'http://10.0.0.7:8080'] }),
    /nats-restart would restart this machine's services .*not those of http:\/\/10\.0\.0\.7:8080/,
    'one remote target among several is enough',
  );
  t.throws(() => chaosSchedule('5s:engine-kill', remote), /needs processes this run manages \(not possible with --attach\)/);
  t.throws(() => chaosSchedule('5s:ingress-kill', { ...remote, targets: ['http://127.0.0.1:8080'] }), /not possible with --attach/);
  const loopback = { loadMs, pauseMs, attach: true, targets: ['http://localhost:8080', 'http://[::1]:8081'] };
  t.same(chaosSchedule(undefined, loopback), [], 'attached to this machine: none by default too');
  t.same(chaosSchedule('5s:redis-restart', loopback), [{ atMs: 5000, kind: 'redis-restart' }], 'asked for, on a loopback target');
  t.same(
    chaosSchedule('default', loopback).map((f) => f.kind),
    ['redis-restart', 'nats-restart', 'postgres-restart', 'kafka-restart'],
  );
});

const slot = (ok: number, failed = 0, refused = 0, throttled = 0): Slot => ({ ok, failed, refused, throttled });

t.test('a fault’s effect: the slots until the next fault, and how long failures lasted', async (t) => {
  // 250 ms slots: fault A at 1.0 s (slot 4), fault B at 3.0 s (slot 12).
  const timeline = [
    slot(5),
    slot(5),
    slot(5),
    slot(5),
    slot(1, 3),
    slot(0, 4, 1),
    slot(2),
    slot(3, 1),
    slot(5),
    slot(5),
    slot(5),
    slot(5),
    slot(2, 0, 0, 7),
    slot(5),
  ];
  const faults = [{ at_s: 1 }, { at_s: 3 }];
  t.same(effectOf(timeline, faults[0]!, faults), { ok: 26, refused: 1, throttled: 0, failed: 8, disruption_s: 1 });
  t.same(effectOf(timeline, faults[1]!, faults), { ok: 7, refused: 0, throttled: 7, failed: 0, disruption_s: 0 });
});

t.test('disruptions merge failures closer than a second', async (t) => {
  const timeline = [slot(5), slot(0, 2), slot(1), slot(0, 1), slot(5), slot(5), slot(5), slot(5), slot(5), slot(0, 9)];
  t.same(disruptionsOf(timeline), [
    { from_s: 0.25, to_s: 1, failed: 3 },
    { from_s: 2.25, to_s: 2.5, failed: 9 },
  ]);
  t.same(disruptionsOf([slot(1), slot(1)]), []);
});

t.test('takeover: a shard counts once it has a newer epoch and another owner', async (t) => {
  const before = new Map([
    [0, { epoch: 3, owner: 'e1' }],
    [1, { epoch: 5, owner: 'e1' }],
  ]);
  const takeover = new Takeover([0, 1], 'e1', before, 1000);
  t.equal(takeover.describe('re-owned'), 'none of its 2 shards was re-owned');
  takeover.observe(
    new Map([
      [0, { epoch: 3, owner: 'e2' }],
      [1, { epoch: 6, owner: 'e1' }],
    ]),
    1500,
  );
  t.notOk(takeover.complete, 'an owner change without a new epoch, or a new epoch by the same engine, is not a takeover');
  takeover.observe(
    new Map([
      [0, { epoch: 4, owner: 'e2' }],
      [1, { epoch: 6, owner: 'e1' }],
    ]),
    2000,
  );
  t.equal(takeover.allDoneMs(), null);
  takeover.observe(
    new Map([
      [0, { epoch: 4, owner: 'e2' }],
      [1, { epoch: 7, owner: 'e3' }],
    ]),
    4500,
  );
  t.ok(takeover.complete);
  t.equal(takeover.allDoneMs(), 3500);
  t.equal(takeover.describe('re-owned'), '2/2 shards re-owned, the first after 1 s, the last after 3.5 s');
  t.equal(new Takeover([], 'e1', before, 0).describe('x'), 'it owned no shards');
});

t.test('a run is judged on the experiment too: faults not run or not injected, or no recovery, are not a pass', async (t) => {
  const fault = (kind: FaultResult['kind'], error: string | null): FaultResult => ({
    kind,
    planned_at_s: 3,
    at_s: 3.1,
    target: 'engine-1',
    detail: 'done',
    recovered_s: 1,
    error,
    effect: { ok: 0, refused: 0, throttled: 0, failed: 0, disruption_s: 0 },
  });
  t.same(unmetOf([fault('engine-kill', null)], [], 2.5), [], 'everything as planned');
  t.same(unmetOf([], [], 0), [], 'no faults asked for (--faults none) and recovered');
  t.same(unmetOf([fault('engine-kill', 'no engine to kill')], [], 2.5), [
    '1 fault(s) did not go as planned: engine-kill (no engine to kill)',
  ]);
  t.same(unmetOf([], [{ kind: 'ingress-kill', planned_at_s: 25, reason: 'the load ended first' }], 2.5), [
    '1 planned fault(s) never ran: ingress-kill at 25 s (the load ended first)',
  ]);
  t.same(unmetOf([fault('engine-kill', null)], [], null), [
    'after the load, not every shard was owned by a live engine within the timeout',
  ]);
});

t.test('fenced shards are read from the engine’s own log lines, split across chunks or not', async (t) => {
  const fenced = new FencedShards('ev');
  const line = (fields: object) => `${JSON.stringify({ level: 'warn', time: '2026-01-01T00:00:00Z', ...fields })}\n`;
  const first = line({ event: 'ev', shard: 3, epoch: 4, msg: FENCED_MESSAGE });
  fenced.write(first.slice(0, 20));
  t.same([...fenced.shards], [], 'half a line is not read yet');
  fenced.write(first.slice(20) + line({ event: 'ev', shard: 5, msg: 'Stopped serving shard: lease lost' }));
  fenced.write(line({ event: 'other', shard: 6, msg: FENCED_MESSAGE }) + `not json ${FENCED_MESSAGE}\n`);
  fenced.write(
    Buffer.from(line({ event: 'ev', shard: 3, epoch: 4, msg: FENCED_MESSAGE }) + line({ event: 'ev', shard: 1, msg: FENCED_MESSAGE })),
  );
  t.same([...fenced.shards].sort(), [1, 3], 'this event’s fenced shards, each once; lease losses and other events are not fencing');
});

t.test('an engine-pause is described by what was observed: shards it did not own, takeovers, refused commits', async (t) => {
  const before = new Map([
    [0, { epoch: 1, owner: 'e1' }],
    [1, { epoch: 1, owner: 'e1' }],
  ]);
  const pause = (takeover: Takeover, extra: Partial<PauseObservation> = {}) =>
    describePause({
      victim: 'e1',
      pauseMs: 7000,
      takeover,
      resumedMs: 7100,
      watchedMs: 1000,
      cutShort: undefined,
      exit: null,
      fencedShards: 0,
      ...extra,
    });
  const head = 'SIGSTOP e1 owning 2 shard(s) for 7 s, then SIGCONT';

  t.equal(
    pause(new Takeover([], 'e1', before, 0), { cutShort: 'x' }),
    'SIGSTOP e1 owning 0 shard(s) for 7 s, then SIGCONT; it owned no shards, so none could be taken over; after SIGCONT it kept running (watched 1 s after SIGCONT, until x)',
    'owning no shards is not "the pause was shorter than its leases"',
  );

  const none = new Takeover([0, 1], 'e1', before, 0);
  t.equal(
    pause(none, { watchedMs: 2500, cutShort: 'the next fault' }),
    `${head}; none of its 2 shards was taken over; after SIGCONT it kept running with its shards (a pause shorter than its leases keeps them) (watched 2.5 s after SIGCONT, until the next fault)`,
  );

  // One shard moved while it was stopped, the other 1.4 s after SIGCONT.
  const moved = new Takeover([0, 1], 'e1', before, 0);
  moved.observe(
    new Map([
      [0, { epoch: 2, owner: 'e2' }],
      [1, { epoch: 1, owner: 'e1' }],
    ]),
    3000,
  );
  moved.observe(
    new Map([
      [0, { epoch: 2, owner: 'e2' }],
      [1, { epoch: 2, owner: 'e2' }],
    ]),
    8500,
  );
  t.equal(moved.movedWithin(7100), 1);
  const taken = `${head}; 2/2 shards taken over (epoch bumped), the first after 3 s, the last after 8.5 s: 1 while it was stopped, 1 after SIGCONT`;
  t.equal(
    pause(moved),
    `${taken}; after SIGCONT it kept running; no commit of it was refused while watched (it logged no "${FENCED_MESSAGE}") — by design the epoch fence refuses its commits on the shards taken over (watched 1 s after SIGCONT)`,
    'fencing not seen is not claimed as seen',
  );
  t.equal(
    pause(moved, { fencedShards: 1 }),
    `${taken}; after SIGCONT it kept running, and the epoch fence refused its commits on 1 shard(s) (it logged "${FENCED_MESSAGE}") (watched 1 s after SIGCONT)`,
  );
  t.match(pause(moved, { exit: 'SIGABRT' }), /; after SIGCONT it exited \(SIGABRT\) \(watched/);
});

/** A LocalStack stand-in: engines that only record the signals they get. */
function fakeStack(engines: string[], onSignal: (name: string, signal: string) => void) {
  const processes = engines.map((name, i) => ({
    name,
    pid: 100 + i,
    paused: false,
    child: { exitCode: null, signalCode: null, stdout: new PassThrough() },
  }));
  return {
    processes,
    stack: {
      running: () => processes,
      signal(p: (typeof processes)[number], signal: string) {
        p.paused = signal === 'SIGSTOP';
        onSignal(p.name, signal);
      },
    },
  };
}

/** The private schedule of a ChaosRun made of stand-ins (no load, no services). */
function schedule(options: Partial<ChaosOptions>): () => Promise<{ results: FaultResult[]; skipped: SkippedFault[] }> {
  const chaos = new ChaosRun({ eventId: 'ev', infraScript: '/nonexistent', ...options } as ChaosOptions);
  return () => (chaos as unknown as { runSchedule(): ReturnType<ReturnType<typeof schedule>> }).runSchedule();
}

t.test('an engine-pause is reported once its takeover watch settles: shards taken over after SIGCONT count', async (t) => {
  let resumedAt = Infinity;
  const { processes, stack } = fakeStack(['e1', 'e2'], (name, signal) => {
    if (name === 'e1' && signal === 'SIGCONT') resumedAt = Date.now();
  });
  // e1 owns both shards until 1.5 s after SIGCONT (a lease claimed on a late rebalance), then e2 does;
  // right after SIGCONT e1 logs a commit the fence refused.
  const pool = {
    query: async () => ({
      rows: [0, 1].map((shard) =>
        Date.now() >= resumedAt + 1500 ? { shard, epoch: '2', owner: 'e2' } : { shard, epoch: '1', owner: 'e1' },
      ),
    }),
  };
  const e1 = processes[0]!;
  const origin = stack.signal.bind(stack);
  stack.signal = (p, signal) => {
    origin(p, signal);
    if (p === e1 && signal === 'SIGCONT')
      setTimeout(() => e1.child.stdout.write(`${JSON.stringify({ event: 'ev', shard: 0, epoch: 1, msg: FENCED_MESSAGE })}\n`), 50);
  };
  const reported: FaultResult[] = [];
  const { results } = await schedule({
    pool: pool as unknown as ChaosOptions['pool'],
    stack: stack as unknown as ChaosOptions['stack'],
    schedule: [{ atMs: 0, kind: 'engine-pause', durationMs: 300 }],
    onFault: (f) => reported.push(f),
  })();
  t.equal(results.length, 1);
  t.same(reported, results, 'reported once, when it was settled');
  const [pause] = results;
  t.match(pause!.detail, /SIGSTOP e1 owning 2 shard\(s\) for 0\.3 s, then SIGCONT; 2\/2 shards taken over \(epoch bumped\)/);
  t.match(pause!.detail, /: 0 while it was stopped, 2 after SIGCONT/, 'the takeovers after SIGCONT are in the report');
  t.match(pause!.detail, /the epoch fence refused its commits on 1 shard\(s\)/, 'the refusal it logged is reported as seen');
  t.ok(pause!.recovered_s !== null && pause!.recovered_s >= 1.7, `recovered after ${pause!.recovered_s} s`);
});

t.test('an engine-pause is watched until the next fault at most, and reported before it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const infraScript = join(dir, 'infra.sh');
  writeFileSync(infraScript, 'exit 0\n');
  const { stack } = fakeStack(['e1', 'e2'], () => undefined);
  // e1 keeps its shards: the watch (30 s past the pause) would go on but for the next fault.
  const pool = { query: async () => ({ rows: [0, 1].map((shard) => ({ shard, epoch: '1', owner: 'e1' })) }) };
  const started = Date.now();
  const reported: string[] = [];
  const { results } = await schedule({
    pool: pool as unknown as ChaosOptions['pool'],
    stack: stack as unknown as ChaosOptions['stack'],
    infraScript,
    schedule: [
      { atMs: 0, kind: 'engine-pause', durationMs: 200 },
      { atMs: 1500, kind: 'redis-restart' },
    ],
    onFault: (f) => reported.push(f.kind),
  })();
  t.ok(Date.now() - started < 5000, 'the run did not wait for the watch’s own limit');
  t.same(reported, ['engine-pause', 'redis-restart'], 'faults are reported in their order');
  t.same(
    results.map((f) => f.kind),
    ['engine-pause', 'redis-restart'],
  );
  t.match(
    results[0]!.detail,
    /none of its 2 shards was taken over; after SIGCONT it kept running with its shards .*until the next fault\)$/,
  );
  t.equal(results[0]!.recovered_s, null);
  t.equal(results[1]!.error, null);
});

/** A stand-in for hack/infra.sh that logs its calls: `restart` fails; `start` fails until its `okFrom`-th call (never: 0). */
function flakyInfra(t: Test, okFrom: number): { script: string; calls: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const calls = join(dir, 'calls');
  const script = join(dir, 'infra.sh');
  writeFileSync(
    script,
    `echo "$1 $2" >> '${calls}'
case "$1" in
  restart) echo "restart: failed to start: $2" >&2; exit 1 ;;
  start) n=$(grep -c '^start' '${calls}'); if [ ${okFrom} -eq 0 ] || [ "$n" -lt ${okFrom} ]; then echo "up: failed: $2" >&2; exit 1; fi ;;
esac
`,
  );
  return { script, calls: () => readFileSync(calls, 'utf8').trim().split('\n') };
}

t.test('a dependency restart that fails is followed by starts until the service is back, and reported so', async (t) => {
  const infra = flakyInfra(t, 2);
  const { results } = await schedule({ infraScript: infra.script, schedule: [{ atMs: 0, kind: 'postgres-restart' }] })();
  t.same(infra.calls(), ['restart postgres', 'start postgres', 'start postgres'], 'started again until it came back');
  t.equal(results.length, 1);
  const fault = results[0]!;
  t.match(
    fault.detail,
    /^hack\/infra\.sh restart postgres failed after [\d.]+ s \(restart: failed to start: postgres\), so postgres may have been stopped and not started again; hack\/infra\.sh start postgres brought it back [\d.]+ s after the fault \(attempt 2\)$/,
  );
  t.ok(fault.recovered_s !== null && fault.recovered_s >= 0, 'recovered, and when');
  t.match(fault.error, /^the restart failed; postgres was started again after [\d.]+ s$/, 'not as planned');
  t.match(formatFault(fault, false), /FAILED: the restart failed; postgres was started again .* — hack\/infra\.sh restart postgres failed/);
  t.match(unmetOf(results, [], 1), [/^1 fault\(s\) did not go as planned: postgres-restart \(the restart failed/]);
});

t.test('a dependency that cannot be started again is reported down, after a bounded number of starts', async (t) => {
  const infra = flakyInfra(t, 0);
  const { results } = await schedule({ infraScript: infra.script, schedule: [{ atMs: 0, kind: 'redis-restart' }] })();
  t.same(infra.calls(), ['restart redis', 'start redis', 'start redis', 'start redis']);
  const fault = results[0]!;
  t.match(fault.detail, /; hack\/infra\.sh start redis failed too, 3 times \(last: up: failed: redis\): redis may be down$/);
  t.equal(fault.recovered_s, null);
  t.equal(fault.error, 'the restart failed, and redis could not be started again');
});

t.test('the schedule stops waiting for its next fault once the run is stopped', async (t) => {
  const stop = new AbortController();
  const chaos = new ChaosRun({
    eventId: 'ev',
    infraScript: '/nonexistent',
    signal: stop.signal,
    schedule: [
      { atMs: 30_000, kind: 'redis-restart' },
      { atMs: 40_000, kind: 'nats-restart' },
    ],
  } as Partial<ChaosOptions> as ChaosOptions);
  const run = chaos as unknown as { startedAt: number; runSchedule(): ReturnType<ReturnType<typeof schedule>> };
  run.startedAt = Date.now();
  setTimeout(() => stop.abort(), 200);
  const began = Date.now();
  const { results, skipped } = await run.runSchedule();
  t.ok(Date.now() - began < 5000, `it did not wait for the fault at 30 s (${Date.now() - began} ms)`);
  t.same(results, []);
  t.same(
    skipped.map((f) => f.reason),
    ['the run was stopped first', 'the run was stopped first'],
  );
});

/**
 * A chaos run over a loopback "ingress" granting every reservation; no database: verify fails,
 * after the load and the schedule — and the run is reported not judged (or it throws: `error`).
 */
async function chaosRun(
  t: Test,
  more: Partial<ChaosOptions>,
  moreStress: Partial<ChaosOptions['stress']> = {},
): Promise<{ report: ChaosReport | undefined; error: unknown; ms: number; statuses: string[]; requests: number }> {
  let requests = 0;
  const http = createServer((req, res) => {
    requests += 1;
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ reservationId: 'r', holdId: 'h', seats: ['A-1-1'], confirmedAt: new Date().toISOString() }));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    http.closeAllConnections();
    http.close();
  });
  const dir = mkdtempSync(join(tmpdir(), 'chaos-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const statuses: string[] = [];
  const chaos = new ChaosRun({
    eventId: 'ev',
    pool: { query: async () => Promise.reject(new Error('no database here')) } as unknown as ChaosOptions['pool'],
    stack: undefined,
    engineEnv: {},
    stress: {
      eventId: 'ev',
      targets: [`http://127.0.0.1:${(http.address() as { port: number }).port}`],
      scenario: { ...DEFAULT_SCENARIO_SETTINGS, scenario: 'hot-seat' },
      buyers: 5,
      mode: 'closed',
      concurrency: 1,
      rate: 0,
      durationS: 60,
      graceS: 5,
      retries: 0,
      maxRetryDelayMs: 100,
      timeoutMs: 5000,
      seed: 1,
      runId: 'chaos-test',
      tokens: { secret: 's', issuer: 'i', audience: 'a', ttlS: 3600 },
      inventory: { sections: [{ id: 'A', rows: [{ id: '1', seats: 10 }] }], pools: [] },
      logPath: join(dir, 'responses.jsonl'),
      ...moreStress,
    },
    schedule: [{ atMs: 30_000, kind: 'redis-restart' }],
    infraScript: '/nonexistent',
    recoveryTimeoutMs: 0,
    verify: {} as ChaosOptions['verify'],
    onFault: () => t.fail('no fault may run'),
    onStatus: (m) => statuses.push(m),
    ...more,
  });
  const began = Date.now();
  const [report, error] = await chaos.run().then(
    (r) => [r, undefined] as const,
    (e: unknown) => [undefined, e] as const,
  );
  return { report, error, ms: Date.now() - began, statuses, requests: requests };
}

t.test('when the load is over, the schedule stops waiting: faults still ahead are skipped at once', async (t) => {
  const { report, error, ms, statuses, requests } = await chaosRun(t, {});
  t.ok(requests >= 5, 'the load ran');
  t.ok(ms < 10_000, `the run did not wait for the fault at 30 s (${ms} ms)`);
  t.match(statuses, ['waiting for every shard to be owned by a live engine', 'verifying']);
  t.equal(error, undefined);
  t.match(report?.unmet, [
    /never ran: redis-restart at 30 s \(the load ended first\)/,
    /not every shard/,
    /^the verification could not be made: no database here$/,
  ]);
  t.equal(report?.verify, null, 'then verify (here without a database): not made');
});

t.test('a chaos run stopped before its load began runs no load and no fault, and goes on at once', async (t) => {
  const { report, ms, statuses, requests } = await chaosRun(t, { signal: AbortSignal.abort() });
  t.equal(requests, 0, 'no request, not even a probe');
  t.ok(ms < 10_000, `nothing waited for the fault at 30 s (${ms} ms)`);
  t.match(statuses, ['waiting for every shard to be owned by a live engine', 'verifying']);
  t.same(report?.faults, []);
  t.match(report?.skipped, [{ kind: 'redis-restart', reason: 'the run was stopped first' }]);
  t.equal(report?.verify, null);
});

/** Shards all owned (the recovery wait ends at once); any other query finds no database. */
const shardsOnly = {
  query: async (sql: string) => {
    if (/FROM shards/.test(sql)) return { rows: [0, 1].map((shard) => ({ shard, epoch: '2', owner: 'e1' })) };
    throw new Error('connect ECONNREFUSED 127.0.0.1:1');
  },
} as unknown as ChaosOptions['pool'];

t.test('a verification that fails leaves the run not judged (exit 3), its faults reported all the same', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const infraScript = join(dir, 'infra.sh');
  writeFileSync(infraScript, 'exit 0\n');
  const { report, error } = await chaosRun(t, {
    pool: shardsOnly,
    infraScript,
    recoveryTimeoutMs: 5000,
    schedule: [{ atMs: 0, kind: 'postgres-restart' }],
    onFault: () => undefined,
  });
  t.equal(error, undefined, 'the run returns a report, it does not throw');
  if (report === undefined) return;
  t.equal(report.ok, false);
  t.match(report.faults, [{ kind: 'postgres-restart', target: 'postgres', error: null }], 'the fault made is in the report');
  t.ok(report.faults[0]!.effect.ok >= 1, 'with what clients saw after it');
  t.not(report.recovery_s, null, 'every shard was owned again');
  t.equal(report.verify, null, 'verification not made');
  t.same(report.unmet, ['the verification could not be made: connect ECONNREFUSED 127.0.0.1:1']);
  t.equal(chaosExitCode(report), 3, 'not judged: exit 3, not 1 (a violation)');
  const text = formatChaosReport(report);
  t.match(text, /^chaos on ev: 1 fault during the load, then verify — NOT JUDGED\n/);
  t.match(text, /postgres-restart +hack\/infra\.sh restart postgres: back in/);
  t.match(text, /\nverify ev: NOT MADE/);
  t.match(text, /\n {2}the verification could not be made: connect ECONNREFUSED 127\.0\.0\.1:1\n/);
  t.same(JSON.parse(JSON.stringify(report)).verify, null, 'and in --json');
});

t.test('a load that fails once begun leaves the run not judged, with what it did', async (t) => {
  const { report, error, statuses } = await chaosRun(
    t,
    { pool: shardsOnly, recoveryTimeoutMs: 5000, schedule: [{ atMs: 0, kind: 'redis-restart' }] },
    {
      // A failure of the load itself once its clock started (as a log that cannot be written).
      onStart: () => {
        throw new Error('the response log is gone');
      },
    },
  );
  t.equal(error, undefined);
  t.match(statuses, ['waiting for every shard to be owned by a live engine', 'verifying'], 'then recovery and verify, as ever');
  t.equal(report?.stress, null, 'no load report');
  t.match(report?.skipped, [{ kind: 'redis-restart', reason: 'the load ended first' }]);
  t.match(report?.unmet, [
    /never ran/,
    /^the load failed, so what clients saw of each fault was not measured: the response log is gone$/,
    /verification could not be made/,
  ]);
  t.equal(chaosExitCode(report!), 3);
  t.match(formatChaosReport(report!), /\nload: FAILED/);
});
