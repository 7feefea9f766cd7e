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
    now: () => clock,
    advance: (ms: number) => void (clock += ms),
    settle: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

t.test('the link is judged by how long a PING has gone unanswered: ok, suspect after a quarter TTL, cut after a TTL', async (t) => {
  const { link, pending, now, advance, settle } = harness(2000);
  t.equal(link.suspectAfterMs, 500);
  t.equal(link.cutAfterMs, 2000);
  t.ok(link.probeEveryMs < link.suspectAfterMs / 2, 'several probes go out before the link is suspect');
  t.equal(link.state(), 'ok', 'a new link is ok');
  link.probe();
  advance(499);
  t.equal(link.state(), 'ok');
  advance(1);
  t.equal(link.state(), 'suspect', 'no answer for a quarter of the TTL');
  pending.shift()!.resolve();
  await settle();
  t.equal(link.state(), 'ok', 'answered, however late');
  advance(60_000);
  t.equal(link.state(), 'ok', 'time without PINGs (a paused process) is no silence');
  const sentAt = now();
  link.probe();
  link.probe();
  advance(1999);
  t.equal(link.state(), 'suspect');
  advance(1);
  t.equal(link.state(), 'cut', 'unanswered for a whole lease TTL');
  t.equal(link.cutAt(), sentAt + 2000, 'cut a TTL after the oldest unanswered PING');
});

t.test('a rejected PING (the client reconnecting) is no answer; the PONG of an older PING does not answer a newer one', async (t) => {
  const { link, pending, advance, settle } = harness(1200);
  link.probe(); // 0
  advance(100);
  link.probe(); // 1
  advance(1100);
  pending[1]!.reject(new Error('DISCONNECT'));
  await settle();
  t.equal(link.state(), 'cut', 'rejected: still unanswered');
  pending[0]!.resolve();
  await settle();
  t.equal(link.state(), 'ok', "the first PING's PONG came: the link answers");
  link.probe(); // 2
  advance(10);
  link.probe(); // 3
  pending[2]!.resolve();
  await settle();
  advance(10);
  link.probe(); // 4: the oldest unanswered one counted
  pending[3]!.resolve(); // sent before 4
  await settle();
  advance(1200);
  t.equal(link.state(), 'cut', 'PING 4 is still unanswered');
  pending[4]!.resolve();
  await settle();
  t.equal(link.state(), 'ok');
});

t.test('start probes at once and then every probe interval, without holding the process; stop ends it', async (t) => {
  let sent = 0;
  const link = new NatsLink(
    async () => {
      sent++;
    },
    240, // probes every 20 ms
    Date.now,
  );
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
