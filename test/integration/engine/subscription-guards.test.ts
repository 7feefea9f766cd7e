/**
 * Every NATS subscription callback of the code base is guarded (guardedCallback), on a real NATS
 * server: nats.js 2.29 runs callbacks inside its socket reader loop, and an exception thrown there
 * ended that loop — the connection, not marked closed, read nothing more until the ping check
 * reconnected 10–15 s later. One message that makes a handler throw must cost that message only:
 * the shard host (engine side), and the sales listener (ingress side), keep reading at once. (The
 * shard client's reply handler: shard-client.test.ts.)
 */
import t, { type Test } from 'tap';
import { createInbox, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { guardedCallback } from '../../../src/adapters/nats/guarded-callback.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { encode, salesSubject } from '../../../src/engine/protocol.js';
import { ShardClient } from '../../../src/engine/shard-client.js';
import { listenForSales, SoldSeats } from '../../../src/ingress/sold-seats.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { testShardHost } from '../../support/shard-host.js';

/** An engine's and an ingress's connections, of this test alone: one a test breaks breaks no other test. */
async function connections(t: Test): Promise<{ engineNc: NatsConnection; ingressNc: NatsConnection }> {
  const connect = (name: string) => connectNats({ url: testConfig().natsUrl, log: silentLogger, name });
  const engineNc = await connect('guards-engine');
  const ingressNc = await connect('guards-ingress');
  t.teardown(async () => {
    await engineNc.close();
    await ingressNc.close();
  });
  return { engineNc, ingressNc };
}

/** A logger that keeps what it logs at warn and above. */
function capturingLogger() {
  const lines: { level: number; msg: string; subject?: string }[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { log, lines };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether `nc` still reads: a request to a responder on another connection is answered in time. */
async function stillReads(nc: NatsConnection, responder: NatsConnection): Promise<boolean> {
  const subject = createInbox();
  const sub = responder.subscribe(subject, { callback: (_e, msg) => msg.respond(msg.data) });
  await responder.flush();
  try {
    await nc.request(subject, new Uint8Array([1]), { timeout: 1000 });
    return true;
  } catch {
    return false;
  } finally {
    sub.unsubscribe();
  }
}

t.test('a guarded callback that throws drops its message, logs it, and the connection reads on', async (t) => {
  const { engineNc, ingressNc } = await connections(t);
  const { log, lines } = capturingLogger();
  const subject = `${uniqueName('guarded')}.one`;
  const got: string[] = [];
  const sub = engineNc.subscribe(subject, {
    callback: guardedCallback(log, 'Test listener', (error, msg) => {
      if (error) return;
      const text = new TextDecoder().decode(msg.data);
      if (text === 'bad') throw new Error('a handler bug');
      got.push(text);
    }),
  });
  t.teardown(() => sub.unsubscribe());
  await engineNc.flush();
  for (const text of ['bad', 'good']) ingressNc.publish(subject, new TextEncoder().encode(text));
  await ingressNc.flush();
  for (let i = 0; i < 50 && got.length === 0; i++) await sleep(20);
  t.same(got, ['good'], 'the message after the one it threw on arrived');
  t.ok(await stillReads(engineNc, ingressNc), 'requests on the connection are answered');
  t.match(lines, [{ level: 40, subject, msg: /Test listener: handling a NATS message failed/ }], 'logged at warn, with the subject');
});

t.test("the shard host's request handler: a message it throws on costs that message, the next is decided at once", async (t) => {
  const { engineNc, ingressNc } = await connections(t);
  const eventId = uniqueName('guard-host');
  let leaseChecks = 0;
  const host = testShardHost({
    eventId,
    rules: { holdTtlMs: 60_000, customerLimit: 4 },
    // Throws at the first request message: the handler throws before it decides anything.
    leaseHeld: () => {
      if (++leaseChecks === 1) throw new Error('a bug in the lease check');
      return true;
    },
    decider: {
      decide: () => {
        const result: ShardResult = { ok: false, type: 'unavailable', seats: ['A-1-1'], message: 'taken' };
        return { result, changes: [] };
      },
      abort: () => false,
      applyRules: () => undefined,
      drain: () => undefined,
      expireAll: () => [],
      fence: () => undefined,
      stop: () => undefined,
    },
    store: { commitBatch: async () => ({ refused: new Map() }) },
    nc: engineNc,
  });
  host.start();
  t.teardown(() => host.handOff());
  await engineNc.flush();
  const client = new ShardClient(ingressNc);
  const command: ShardCommand = { type: 'reserve', key: 'k', customer: 'c', seat: 'A-1-1' };
  const started = Date.now();
  const result = await client.send(eventId, 0, command, { deadlineMs: 2000, attemptTimeoutMs: 200 }).catch((e: unknown) => e);
  t.match(result, { type: 'unavailable' }, 'the retry is decided');
  t.equal(leaseChecks, 2, 'the first message was dropped, the retry decided');
  t.ok(Date.now() - started < 1000, `within a retry (${Date.now() - started} ms)`);
  t.ok(await stillReads(engineNc, ingressNc), "the engine's connection reads on");
});

t.test('the sales listener: an announcement it throws on costs that announcement, the next is learned', async (t) => {
  const { engineNc, ingressNc } = await connections(t);
  const eventId = uniqueName('guard-sales');
  const sold = new SoldSeats();
  let heard = 0;
  const sub = listenForSales(ingressNc, sold, () => {
    if (++heard === 1) throw new Error('a bug in the metrics');
  });
  t.teardown(() => sub.unsubscribe());
  await ingressNc.flush();
  engineNc.publish(salesSubject(eventId), encode({ seats: ['A-1-1'], buyers: ['ann'] }));
  engineNc.publish(salesSubject(eventId), encode({ seats: ['A-1-2'], buyers: ['bob'] }));
  await engineNc.flush();
  for (let i = 0; i < 50 && heard < 2; i++) await sleep(20);
  t.equal(heard, 2, 'both announcements were heard');
  t.same(sold.sold(eventId, ['A-1-1', 'A-1-2']), ['A-1-1', 'A-1-2'], 'and learned (the first before its counter threw)');
  t.ok(await stillReads(ingressNc, engineNc), "the ingress's connection reads on");
});
