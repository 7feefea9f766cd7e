/**
 * What a shard host counts: a command answered with its idempotency key's remembered result — a
 * client's retry — is a replay, counted in `sentinel_engine_replays_total`, not another decision in
 * `sentinel_engine_decisions_total` (where a retried sale used to count as a second sale). The real
 * decider, on an in-memory NATS and store.
 */
import type { Msg, NatsConnection } from 'nats';
import type { Counter } from 'prom-client';
import t from 'tap';
import type { ShardCommand } from '../../../src/domain/commands.js';
import { EngineMetrics } from '../../../src/engine/metrics.js';
import { decodeReplies, encode, shardSubject, type ShardReply } from '../../../src/engine/protocol.js';
import { testDecider, testShardHost } from '../../support/shard-host.js';
import { storedEvent } from '../../support/stored-event.js';

const event = storedEvent({
  id: 'replays',
  displayName: 'Replays',
  layout: { sections: [{ id: 'A', rows: [{ id: '1', seats: 4 }] }], pools: [] },
});

/**
 * A host of the event's one shard with the real decider, on a NATS connection of the test's (its
 * subscription is called directly) and a store where every commit succeeds. `request` sends one
 * request message and resolves with its replies, in order, once each has come.
 */
function host() {
  let deliver: ((error: Error | null, msg: Msg) => void) | undefined;
  const waiting = new Map<string, { replies: Map<number, ShardReply>; count: number; done: (replies: ShardReply[]) => void }>();
  const nc = {
    subscribe: (_subject: string, options: { callback: (error: Error | null, msg: Msg) => void }) => {
      deliver = options.callback;
      return { unsubscribe: () => (deliver = undefined) };
    },
    publish: (subject: string, data: Uint8Array) => {
      const request = waiting.get(subject);
      if (request === undefined) return; // the shard's announcements of its sales
      for (const [index, reply] of decodeReplies(data).replies) request.replies.set(index, reply);
      if (request.replies.size === request.count) request.done([...request.replies].sort(([a], [b]) => a - b).map(([, reply]) => reply));
    },
    info: undefined,
  } as unknown as NatsConnection;
  const metrics = new EngineMetrics();
  const decider = testDecider(event);
  const shardHost = testShardHost({
    eventId: event.id,
    rules: { holdTtlMs: event.holdTtlMs, customerLimit: event.customerLimit },
    batchWindowMs: 1,
    decider,
    store: { commitBatch: async () => ({ refused: new Map() }) },
    nc,
    metrics,
  });
  shardHost.start();
  let inboxes = 0;
  const request = (...commands: ShardCommand[]) =>
    new Promise<ShardReply[]>((done) => {
      const inbox = `inbox.${++inboxes}`;
      waiting.set(inbox, { replies: new Map(), count: commands.length, done });
      const msg = {
        subject: shardSubject(event.id, 0),
        reply: inbox,
        data: encode({ requests: commands.map((command) => ({ command })) }),
      };
      deliver!(null, msg as unknown as Msg);
    });
  return { shardHost, metrics, request };
}

/** A counter's series by their `result` label. */
async function byResult(counter: Counter<'result'>): Promise<Record<string, number>> {
  return Object.fromEntries((await counter.get()).values.map(({ labels, value }) => [String(labels.result), value]));
}

t.test(
  'replays are counted apart from decisions: a retried hold is not another hold, a repeated refusal not another refusal',
  async (t) => {
    const { shardHost, metrics, request } = host();
    t.teardown(() => shardHost.handOff());
    const ann: ShardCommand = { type: 'hold', key: 'ann-1', customer: 'ann', seats: ['A-1-1'] };
    const bob: ShardCommand = { type: 'hold', key: 'bob-1', customer: 'bob', seats: ['A-1-1'] };

    // The first hold, and a retry of it in the same message: the retry joins the first's commit.
    const [held, retriedAtOnce] = await request(ann, ann);
    t.match(held, { result: { type: 'held' } });
    t.notOk('replayed' in held!, 'the first answer is no replay');
    t.same(retriedAtOnce, { ...held, replayed: true }, "the retry gets the first's answer, said to be a replay");
    // A retry after the commit: answered from memory, after a commit of its own.
    t.same(await request(ann), [{ ...held, replayed: true }], 'a later retry gets it too');
    // Another customer's hold of the seat, refused — and that refusal replayed to the same key.
    const [refused] = await request(bob);
    t.match(refused, { result: { type: 'unavailable' } });
    t.same(await request(bob), [refused], 'the refusal, replayed');

    t.same(await byResult(metrics.decisions), { held: 1, unavailable: 1 }, 'one hold and one refusal were decided');
    t.same(await byResult(metrics.replays), { held: 2, unavailable: 1 }, 'the three retries are counted as replays, by their result');
  },
);
