import t from 'tap';
import { NatsLink } from '../../../src/engine/nats-link.js';

/** A round trip the test answers, fails or leaves hanging, on a clock it moves. */
function harness(leaseTtlMs: number) {
  let clock = 1_000_000;
  const pending: { resolve: () => void; reject: (error: Error) => void }[] = [];
  const link = new NatsLink(
    () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })),
    leaseTtlMs,
    () => clock,
  );
  return {
    link,
    pending,
    advance: (ms: number) => void (clock += ms),
    settle: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

t.test('the link is judged by how long a PING has gone unanswered: ok, suspect after a quarter TTL, cut after a TTL', async (t) => {
  const { link, pending, advance, settle } = harness(2400);
  t.equal(link.suspectAfterMs, 600);
  t.equal(link.cutAfterMs, 2400);
  t.equal(link.probeEveryMs, 200);
  t.equal(link.state(), 'ok', 'a new link is ok');
  link.probe();
  advance(150);
  pending.shift()!.resolve();
  await settle();
  t.equal(link.silentForMs(), 0, 'answered');
  advance(50);
  t.equal(link.state(), 'ok', 'nothing unanswered: no silence');
  link.probe();
  advance(200);
  link.probe();
  advance(399);
  t.equal(link.state(), 'ok');
  advance(1);
  t.equal(link.state(), 'suspect', 'no answer for a quarter of the TTL');
  t.equal(link.silentForMs(), 600, 'counted from the oldest unanswered PING');
  for (let i = 0; i < 8; i++) {
    advance(200);
    link.probe();
  }
  t.equal(link.state(), 'suspect');
  advance(200);
  t.equal(link.state(), 'cut', 'unanswered for a whole lease TTL');
});

t.test(
  'after a silence of TTL/4 an answer is trusted only once the link has stayed answered for TTL/4; each such silence is a break',
  async (t) => {
    const { link, pending, advance, settle } = harness(2400);
    link.probe(); // 0
    advance(100);
    pending[0]!.resolve();
    await settle();
    t.equal(link.breaks, 0, 'a prompt answer is no break');
    for (let i = 1; i <= 4; i++) {
      link.probe();
      advance(200);
    }
    t.equal(link.state(), 'suspect');
    pending[4]!.resolve(); // answers 1..4
    await settle();
    t.equal(link.breaks, 1, 'the silence of 800 ms was a break');
    t.equal(link.silentForMs(), 0);
    t.equal(link.state(), 'suspect', 'answered, not trusted yet');
    advance(599);
    t.equal(link.state(), 'suspect');
    advance(1);
    t.equal(link.state(), 'ok', 'answered for TTL/4');
  },
);

t.test('PINGs rejected at a reconnect are no answer; the PONG of an older PING does not answer a newer one', async (t) => {
  const { link, pending, advance, settle } = harness(1200);
  link.probe(); // 0
  advance(100);
  link.probe(); // 1
  advance(1100);
  for (const ping of pending.splice(0, 2)) ping.reject(new Error('DISCONNECT')); // nats.js rejects every outstanding PONG at a reconnect
  await settle();
  t.equal(link.state(), 'cut', 'rejected: still unanswered');
  link.probe(); // 2 (now pending[0])
  pending[0]!.resolve();
  await settle();
  t.equal(link.silentForMs(), 0, 'answered after the reconnect');
  link.probe(); // 3
  advance(10);
  link.probe(); // 4
  pending[1]!.resolve(); // answers 3
  await settle();
  advance(10);
  link.probe(); // 5: now the oldest unanswered one
  pending[2]!.resolve(); // answers 4, sent before 5
  await settle();
  advance(1200);
  t.equal(link.state(), 'cut', 'PING 5 is still unanswered');
  pending[3]!.resolve();
  await settle();
  t.equal(link.silentForMs(), 0);
});

t.test(
  'a probe far too late (the process was paused) counts the silence from itself, and the link is trusted once it is answered',
  async (t) => {
    const { link, pending, advance, settle } = harness(2400);
    link.probe(); // 0: in flight when the process stops
    advance(5000); // SIGSTOP … SIGCONT: no timer fired
    t.equal(link.state(), 'cut', 'judged before the next probe: the engine yields to I/O first (Engine.tick)');
    link.probe(); // 1: the probe timer, late
    t.equal(link.silentForMs(), 0, 'counted from the PING sent now');
    t.equal(link.state(), 'suspect', 'but not trusted without an answer');
    t.equal(link.breaks, 1, 'a pause with a PING unanswered counts as a break');
    pending[0]!.resolve(); // the PONG of the PING sent before the pause
    await settle();
    t.equal(link.state(), 'suspect', 'an answer to a PING from before the pause is not enough');
    advance(200);
    link.probe(); // 2: on time
    advance(300);
    t.equal(link.state(), 'suspect', 'still not trusted');
    pending[2]!.resolve(); // answers 1 and 2
    await settle();
    t.equal(link.state(), 'ok', 'answered after the pause');

    // Paused with every PING answered (the usual case: a PONG comes back in well under a
    // millisecond): the same — what the link did meanwhile is not known.
    advance(5000);
    link.probe(); // 3
    t.equal(link.state(), 'suspect', 'not trusted until a PING sent after the pause is answered');
    t.equal(link.breaks, 2, 'a pause (over three probe intervals: TTL/4) is a break');
    pending[3]!.resolve();
    await settle();
    t.equal(link.state(), 'ok');
  },
);

t.test('a link cut before a pause stays cut after it: its silence goes on', async (t) => {
  const { link, advance } = harness(2400);
  link.probe();
  for (let i = 0; i < 12; i++) {
    advance(200);
    link.probe();
  }
  t.equal(link.state(), 'cut');
  const silent = link.silentForMs();
  advance(5000); // paused
  link.probe(); // late
  t.equal(link.state(), 'cut');
  t.equal(link.silentForMs(), silent + 5000, 'counted from the first unanswered PING still');
  t.equal(link.breaks, 0);
});

/** Down for 700 ms, up for 200, again and again, from 0 to `until` ms: probes every 200 ms; the states, every 100. */
async function flap({ link, pending, advance, settle }: ReturnType<typeof harness>, until: number): Promise<string[]> {
  const up = (at: number) => at % 900 >= 700;
  const states: string[] = [];
  for (let at = 0; at <= until; at += 100) {
    if (at > 0) advance(100);
    if (at % 200 === 0) link.probe();
    if (up(at)) for (const ping of pending.splice(0)) ping.resolve();
    await settle();
    if (link.silentForMs() >= 800) throw new Error(`a silence as long as a TTL at ${at} ms`);
    states.push(link.state());
  }
  return states;
}

t.test(
  'a link that keeps flapping — no silence a whole TTL long, never ok for TTL/4 — is cut after a TTL, until ok for TTL/4',
  async (t) => {
    const h = harness(2400); // suspect after 600 ms, probes every 200
    const { link, pending, advance, settle } = h;
    // Each silence is longer than TTL/4 and shorter than a TTL, and between them the link counts as
    // ok for 300 ms at most, less than TTL/4.
    const states = await flap(h, 3600);
    const stateAt = (ms: number) => states[ms / 100];
    t.same([0, 600, 1300, 1600, 2200, 2400].map(stateAt), ['ok', 'suspect', 'ok', 'suspect', 'ok', 'cut'], 'ok between silences at first');
    t.same(states.slice(24), Array(13).fill('cut'), 'a TTL after its trouble began: cut, answers or not (3,100–3,300 ms were ok before)');
    t.equal(link.untrustedForMs(), 3600, 'its trouble counted from the first silence');
    t.ok(link.breaks >= 3, 'each silence of TTL/4 is a break');

    // The link holds: trusted again TTL/4 after the answer that ended its last long silence (at
    // 3,400 ms), and out of trouble — no longer cut — once it has been ok for TTL/4 more.
    const after: string[] = [];
    for (let at = 3700; at <= 4800; at += 100) {
      advance(100);
      if (at % 200 === 0) link.probe();
      for (const ping of pending.splice(0)) ping.resolve();
      await settle();
      after.push(`${link.state()}:${link.untrustedForMs() > 0}`);
    }
    t.same(after, [...Array(9).fill('cut:true'), ...Array(3).fill('ok:false')]);
  },
);

t.test(
  'a link cut for its trouble stays cut over a pause, until a PING sent after it is answered and it has been ok for TTL/4',
  async (t) => {
    const h = harness(2400);
    const { link, pending, advance, settle } = h;
    await flap(h, 3600);
    const answer = async () => {
      for (const ping of pending.splice(0)) ping.resolve();
      await settle();
    };
    for (let i = 0; i < 3; i++) {
      advance(200);
      link.probe();
      await answer();
    }
    t.equal(link.state(), 'cut', 'answering, still cut (4,200 ms)');
    const breaks = link.breaks;
    advance(1000); // paused
    link.probe();
    t.equal(link.state(), 'cut', 'after the pause: still cut');
    t.equal(link.breaks, breaks, 'its trouble goes on: no new break');
    advance(100);
    t.equal(link.state(), 'cut', 'not trusted before the PING sent after the pause is answered');
    await answer();
    const after: string[] = [];
    for (let i = 0; i < 8; i++) {
      advance(100);
      if (i % 2 === 1) link.probe();
      await answer();
      after.push(link.state());
    }
    t.same(after, ['cut', 'cut', 'cut', 'cut', 'cut', 'ok', 'ok', 'ok'], 'ok for TTL/4 after that answer, and no longer cut');
  },
);

/**
 * From 0 to `until` ms in steps of `step` ms: probes every 200 ms, and every PING is answered at once
 * but during the silences (`[from, to)`, ms), whose PINGs are all answered at their end. The state
 * at each step, as `at:state`.
 */
async function silences(
  { link, pending, advance, settle }: ReturnType<typeof harness>,
  windows: readonly (readonly [number, number])[],
  until: number,
  step = 100,
): Promise<string[]> {
  const silent = (at: number) => windows.some(([from, to]) => at >= from && at < to);
  const states: string[] = [];
  for (let at = 0; at <= until; at += step) {
    if (at > 0) advance(step);
    if (!silent(at)) for (const ping of pending.splice(0)) ping.resolve();
    await settle();
    if (at % 200 === 0) link.probe();
    if (!silent(at)) for (const ping of pending.splice(0)) ping.resolve();
    await settle();
    states.push(`${at}:${link.state()}`);
  }
  return states;
}

/** The state changes in `states` (from `silences`), in order. */
const changes = (states: readonly string[]) => states.filter((state, i) => i === 0 || state.split(':')[1] !== states[i - 1]!.split(':')[1]);

for (const fraction of [0.5, 0.6, 0.75, 0.9]) {
  t.test(`a single silence of ${fraction} TTL never makes the link cut, then or after it answers`, async (t) => {
    const h = harness(2400); // suspect after 600 ms, probes every 200
    const silenceMs = Math.round(fraction * 2400);
    // Silent from 1,000 ms (a probe's time: the silence counted is the whole window), looked at every 20 ms.
    const states = await silences(h, [[1000, 1000 + silenceMs]], 1000 + 4 * 2400, 20);
    t.notOk(
      states.some((state) => state.endsWith(':cut')),
      `never cut: ${changes(states).join(' ')}`,
    );
    // Suspect from TTL/4 into the silence until TTL/4 after the answer; ok for good after that.
    t.same(
      changes(states),
      ['0:ok', '1600:suspect', `${1000 + silenceMs + 600}:ok`],
      'suspect during the silence and TTL/4 after it, then ok',
    );
    t.equal(h.link.breaks, 1, 'one break');
    t.equal(h.link.untrustedForMs(), 0, 'its trouble ended');
    t.equal(h.link.cutForMs(), 0);
  });
}

t.test('a silence of a whole TTL makes the link cut, and it stays cut after the answer until it has been ok for TTL/4', async (t) => {
  const h = harness(2400);
  const states = await silences(h, [[1000, 3600]], 8000); // 2,600 ms
  t.same(changes(states), ['0:ok', '1600:suspect', '3400:cut', '4800:ok'], 'cut a TTL into the silence; ok TTL/4 + TTL/4 after the answer');
  const h2 = harness(2400);
  await silences(h2, [[1000, 3400]], 3500); // exactly a TTL, answered at 3,400 ms
  t.equal(h2.link.state(), 'cut', 'a silence of exactly a TTL: cut');
  t.equal(h2.link.cutForMs(), 100, 'cut since a TTL after the silence began');
  t.equal(h2.link.untrustedForMs(), 2500, 'in trouble since the silence began');
});

t.test('a second silence in the same trouble makes it flapping: cut once the trouble is a TTL long, not before', async (t) => {
  // A silence of 0.5 TTL, answered, and before that answer is trusted another one, of 0.29 TTL: no
  // silence near a TTL, and the link never ok in between.
  const h = harness(2400);
  const states = await silences(
    h,
    [
      [1000, 2200],
      [2400, 3100],
    ],
    6000,
  );
  const cutAt = states.findIndex((state) => state.endsWith(':cut')) * 100;
  t.equal(cutAt, 3400, 'cut a TTL after its trouble began (at 1,000 ms), its second silence at TTL/4 since 3,000 ms');
  t.same(changes(states).slice(-2), ['3400:cut', '4300:ok'], 'cut until ok for TTL/4 after the second answer was trusted');

  // The second silence reaches TTL/4 only after the trouble is a TTL long: cut from then on.
  const late = harness(2400);
  const lateStates = await silences(
    late,
    [
      [1000, 3000], // 0.83 TTL, its answer trusted from 3,600 ms
      [3400, 4600], // begun before that: the trouble would have ended at 4,200 ms
    ],
    4100,
  );
  t.same(changes(lateStates), ['0:ok', '1600:suspect', '3600:ok', '4000:cut'], 'cut when the second silence reaches TTL/4');
  t.equal(late.link.cutForMs(), 100, 'counted as cut from then (for Engine.roundWhileCutOff)');
  t.equal(late.link.untrustedForMs(), 3100, 'its trouble, from the first silence');
});

t.test('start probes at once and then every probe interval, without holding the process; stop ends it', async (t) => {
  let sent = 0;
  const link = new NatsLink(async () => {
    sent++;
  }, 240); // probes every 20 ms, on the monotonic clock
  link.start();
  t.equal(sent, 1, 'one PING at once');
  const until = Date.now() + 5000;
  while (sent < 4 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
  link.stop();
  const after = sent;
  t.ok(after >= 4, `more PINGs followed (${after})`);
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.equal(sent, after, 'none after stop');
});
