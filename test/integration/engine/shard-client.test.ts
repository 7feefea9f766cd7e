/**
 * The shard protocol's client against a real NATS server, with scripted owners: batching, answers
 * by index in several messages, first answer wins, no responders, lost replies, a closed
 * connection.
 */
import t from 'tap';
import type { Msg, NatsConnection } from 'nats';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { decodeRequests, encode, shardSubject, type ShardReply, type ShardRequest } from '../../../src/engine/protocol.js';
import { ShardClient } from '../../../src/engine/shard-client.js';
import { DeadlineError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';

const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'shard-client-test' });
t.teardown(() => nc.close());

const hold = (i: number): ShardCommand => ({ type: 'hold', key: `k${i}`, customer: `c${i}`, seats: [`A-1-${i + 1}`] });
const released = (request: ShardRequest): ShardResult => ({ ok: true, type: 'released', holdId: request.command.key });

/** An owner on the shard's subject that hands each request message to `answer`. */
function owner(connection: NatsConnection, eventId: string, answer: (msg: Msg, requests: readonly ShardRequest[]) => void) {
  const messages: (readonly ShardRequest[])[] = [];
  const sub = connection.subscribe(shardSubject(eventId, 0), {
    callback: (error, msg) => {
      if (error) return;
      const { requests } = decodeRequests(msg.data);
      messages.push(requests);
      answer(msg, requests);
    },
  });
  return { messages, stop: () => sub.unsubscribe() };
}

t.test('commands for one shard in one turn travel in one message; answers come by index, in several messages', async (t) => {
  const eventId = uniqueName('batch');
  const shard = owner(nc, eventId, (msg, requests) => {
    // Odd indexes at once, even ones a little later (as losers and committed winners would be).
    const reply = (pick: (i: number) => boolean) =>
      encode({
        replies: requests.flatMap((r, i) => (pick(i) ? [[i, { result: released(r) }] as [number, ShardReply]] : [])),
      });
    msg.respond(reply((i) => i % 2 === 1));
    setTimeout(() => msg.respond(reply((i) => i % 2 === 0)), 20);
  });
  await nc.flush();
  const client = new ShardClient(nc);
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => client.send(eventId, 0, hold(i), { deadlineMs: 2000, requestId: `r${i}` })),
  );
  t.same(
    results.map((r) => (r.type === 'released' ? r.holdId : r.type)),
    Array.from({ length: 10 }, (_, i) => `k${i}`),
    'each caller got the answer to its own command',
  );
  t.equal(shard.messages.length, 1, 'one request message');
  t.same(
    shard.messages[0]!.map((r) => r.requestId),
    Array.from({ length: 10 }, (_, i) => `r${i}`),
    'request ids travel with their commands',
  );
  shard.stop();
});

t.test('the first answer to a command wins; a later one is ignored', async (t) => {
  const eventId = uniqueName('first');
  const stale: ShardResult = { ok: false, type: 'unavailable', seats: ['A-1-1'], message: 'stale owner' };
  const live = owner(nc, eventId, (msg, requests) => msg.respond(encode({ replies: [[0, { result: released(requests[0]!) }]] })));
  const late = owner(nc, eventId, (msg) => setTimeout(() => msg.respond(encode({ replies: [[0, { result: stale }]] })), 30));
  await nc.flush();
  const client = new ShardClient(nc);
  t.equal((await client.send(eventId, 0, hold(0), { deadlineMs: 2000 })).type, 'released');
  await new Promise((resolve) => setTimeout(resolve, 60)); // the late answer arrives and is dropped
  t.equal((await client.send(eventId, 0, hold(1), { deadlineMs: 2000 })).type, 'released', 'the client still works');
  live.stop();
  late.stop();
});

t.test('retryable answers and lost replies are retried with the same command, until the deadline', async (t) => {
  const eventId = uniqueName('retry');
  let attempts = 0;
  const shard = owner(nc, eventId, (msg, requests) => {
    attempts++;
    if (attempts === 1) msg.respond(encode({ replies: [[0, { error: { code: 'fenced', message: 'fenced', retryable: true } }]] }));
    else if (attempts === 2)
      return; // lost: the attempt times out
    else msg.respond(encode({ replies: [[0, { result: released(requests[0]!) }]] }));
  });
  await nc.flush();
  const client = new ShardClient(nc);
  const result = await client.send(eventId, 0, hold(7), { deadlineMs: 3000, attemptTimeoutMs: 200 });
  t.equal(result.type, 'released');
  t.equal(attempts, 3);
  t.same(new Set(shard.messages.map((m) => m[0]!.command.key)), new Set(['k7']), 'every attempt carried the same key');
  shard.stop();
});

t.test('a malformed reply costs only its own attempt: the client goes on reading replies at once', async (t) => {
  // nats.js runs the client's reply callback in its socket reader loop: a reply batch whose
  // entries are not [index, reply] pairs made it throw there, the loop ended, and the connection
  // read nothing more — every request timed out — until the ping check reconnected, 10-15 s later.
  const malformed = [
    '{"replies":[1]}',
    '{"replies":[null]}',
    '{"replies":[["__proto__",{}]]}',
    '{"replies":[[0,{"result":{"ok":true,"type":"released"}}]]}',
  ];
  const eventId = uniqueName('malformed');
  const attempts = new Map<string, number>();
  const shard = owner(nc, eventId, (msg, requests) => {
    const key = requests[0]!.command.key;
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    // Each command's first attempt gets a malformed reply, its retry the answer.
    if (attempt === 1) msg.respond(new TextEncoder().encode(malformed[Number(key.slice(1)) % malformed.length]));
    else msg.respond(encode({ replies: requests.map((r, i) => [i, { result: released(r) }] as [number, ShardReply]) }));
  });
  await nc.flush();
  const client = new ShardClient(nc);
  for (let i = 0; i < malformed.length; i++) {
    const started = Date.now();
    const result = await client.send(eventId, 0, hold(i), { deadlineMs: 2000, attemptTimeoutMs: 200 });
    t.equal(result.type, 'released', `${malformed[i]}: the retry is answered`);
    t.equal(attempts.get(`k${i}`), 2, 'after one retry');
    t.ok(Date.now() - started < 1000, `answered within its first attempt's timeout and a retry (${Date.now() - started} ms)`);
  }
  t.equal((Array.prototype as unknown as Record<string, unknown>).done, undefined, 'nothing was assigned to Array.prototype');
  shard.stop();

  // A reply malformed only in part: its good entries are answers, at once.
  const partlyId = uniqueName('partly');
  const partly = owner(nc, partlyId, (msg, requests) =>
    msg.respond(
      encode({ replies: [null, ['__proto__', {}], [0, { result: released(requests[0]!) }]] as unknown as [number, ShardReply][] }),
    ),
  );
  await nc.flush();
  const started = Date.now();
  t.equal((await client.send(partlyId, 0, hold(9), { deadlineMs: 2000, attemptTimeoutMs: 500 })).type, 'released');
  t.ok(Date.now() - started < 400, 'the good entry was an answer at its first attempt');
  t.equal(partly.messages.length, 1, 'no retry');
  partly.stop();
});

t.test('no owner: "no responders", retried until the deadline', async (t) => {
  const client = new ShardClient(nc);
  const started = Date.now();
  const error = await client.send(uniqueName('nobody'), 0, hold(0), { deadlineMs: 400 }).catch((e: unknown) => e);
  t.type(error, DeadlineError);
  t.match((error as Error).message, /no responders/);
  t.ok(Date.now() - started < 1500, 'gave up at the deadline');
});

t.test('a closed connection fails the request, it does not crash the process', async (t) => {
  const closed = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'shard-client-closed' });
  await closed.close();
  const client = new ShardClient(closed);
  const error = await client.send(uniqueName('closed'), 0, hold(0), { deadlineMs: 300 }).catch((e: unknown) => e);
  t.type(error, DeadlineError);
  t.match((error as Error).message, /NATS CONNECTION_CLOSED/);
});
