import t from 'tap';
import { disruptionsOf, effectOf, Takeover, unmetOf, type FaultResult } from '../../../src/jobs/chaos/chaos.js';
import { DEFAULT_ORDER, defaultSchedule, FAULT_KINDS, PROCESS_FAULTS, parseSchedule } from '../../../src/jobs/chaos/schedule.js';
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
  t.same(unmetOf([fault('engine-kill', 'no engine to kill')], [], 2.5), ['1 fault(s) failed to inject: engine-kill (no engine to kill)']);
  t.same(unmetOf([], [{ kind: 'ingress-kill', planned_at_s: 25, reason: 'the load ended first' }], 2.5), [
    '1 planned fault(s) never ran: ingress-kill at 25 s (the load ended first)',
  ]);
  t.same(unmetOf([fault('engine-kill', null)], [], null), [
    'after the load, not every shard was owned by a live engine within the timeout',
  ]);
});
