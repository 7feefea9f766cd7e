/**
 * A sale's opening: a thousand buyers connect in the same instant to an ingress that is busy. The
 * kernel completes their handshakes and queues them until the process accepts; a queue shorter
 * than the crowd drops the rest of the SYNs, and each of those buyers waits a second (then 3 s,
 * 7 s…) for the retransmission before its request is even sent.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { testDatabase } from '../../support/stack.js';
import { startHarness } from './harness.js';

const BUYERS = 1000;
/** Well under the first SYN retransmission (1 s): no buyer had to wait for one. */
const PROMPT_MS = 900;

const pool = await testDatabase();
t.teardown(() => pool.end());

const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));

t.test(
  'a thousand connections made while the ingress is busy are all accepted without a SYN retry',
  { skip: somaxconn <= BUYERS ? `net.core.somaxconn is ${somaxconn}: the kernel caps any backlog below ${BUYERS}` : false },
  async (t) => {
    const h = await startHarness(pool);
    t.teardown(() => h.close());
    const sockets: Socket[] = [];
    t.teardown(() => sockets.forEach((s) => s.destroy()));
    const started = performance.now();
    const connected: number[] = [];
    for (let i = 0; i < BUYERS; i++) {
      const socket = connect({ host: '127.0.0.1', port: h.running.port });
      socket.on('error', () => undefined);
      socket.once('connect', () => connected.push(performance.now() - started));
      sockets.push(socket);
    }
    // Let the connect() calls go out (net.connect issues them on the next tick), then keep this
    // process — the ingress's — busy while the kernel completes the handshakes: nothing is accepted.
    await new Promise((resolve) => setImmediate(resolve));
    const busyUntil = performance.now() + 300;
    while (performance.now() < busyUntil) {
      // a rush being served
    }
    const deadline = performance.now() + 5000;
    while (connected.length < BUYERS && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(connected.length, BUYERS, 'every buyer connected');
    const late = connected.filter((ms) => ms > PROMPT_MS).length;
    t.equal(late, 0, `no connection waited for a SYN retransmission (slowest ${Math.round(Math.max(...connected))} ms)`);
  },
);
