/**
 * Best-available over a section that spans shards, retried: the ingress asks the shards in turn
 * (every one strictly first, then allowing an orphan), and a shard that refused is asked to decide
 * afresh on a retry (redecideRefusal). If the first attempt's answer was lost after a later shard
 * held, an earlier shard with room by now would hold a second time — the client told of that hold,
 * the first left live and unknown to them until its TTL. So, for a key whose outcome was left
 * unknown, the ingress first asks every shard to replay what it holds under the key (replayOnly),
 * and only then walks them.
 *
 * The real ingress against real Redis, NATS and Postgres, with fake shards that remember a success
 * per key, as shards do.
 */
import t from 'tap';
import type { HoldView, ShardResult } from '../../../src/domain/commands.js';
import { testLayout } from '../../support/stack.js';
import { call, eventPath, fakeShardStack } from './harness.js';

const { spec, harness, shards } = await fakeShardStack(t, { layout: testLayout({ rows: 8, seats: 20 }), shardCount: 2 });
const alice = await harness.token('alice');

t.test('a retry gets back the hold its lost first attempt made on a later shard, and no second one', async (t) => {
  const now = Date.now();
  const hold = (id: string, seats: string[]): HoldView => ({
    holdId: id,
    customer: 'alice',
    seats,
    quantity: 2,
    createdAt: now,
    expiresAt: now + 60_000,
  });
  // Shard 1 held under the first attempt's (strict) key; its answer never reached the client.
  // Shard 0 refused then, and has room now: asked to decide, it would hold.
  const remembered = new Map<string, ShardResult>();
  let lost = true;
  shards.answer = ({ shard, command }) => {
    if (command.type !== 'hold-best') return { ok: false, type: 'invalid', field: 'type', message: 'unscripted' };
    if (lost && shard === 1) {
      // Shard 1 holds (strictly), and every answer it sends is lost until the deadline.
      if (command.strictOrphans === true)
        remembered.set(`${shard} ${command.key}`, { ok: true, type: 'held', hold: hold('h-shard-1', ['A-2-1', 'A-2-2']) });
      return 'silence';
    }
    const replay = remembered.get(`${shard} ${command.key}`);
    if (replay !== undefined) return replay;
    if (command.replayOnly === true) return { ok: false, type: 'unavailable', seats: [], message: 'nothing decided' };
    if (lost) return { ok: false, type: 'unavailable', seats: [], message: 'no room' };
    const result: ShardResult = { ok: true, type: 'held', hold: hold(`h-shard-${shard}-again`, ['A-1-1', 'A-1-2']) };
    remembered.set(`${shard} ${command.key}`, result);
    return result;
  };
  const path = eventPath(spec, '/holds');
  const body = { section: 'A', quantity: 2 };
  const first = await call(harness.url, 'POST', path, { token: alice, key: 'alice-best-1', body });
  t.equal(first.status, 503, `the first answer is lost: 503 (${first.text.slice(0, 200)})`);
  t.same([...new Set(shards.calls.map((c) => c.shard))].sort(), [0, 1], 'section A spans both shards');
  lost = false;
  shards.calls.length = 0;
  const retry = await call(harness.url, 'POST', path, { token: alice, key: 'alice-best-1', body });
  t.equal(retry.status, 201, retry.text.slice(0, 200));
  t.equal(retry.body.holdId, 'h-shard-1', 'the hold the first attempt made');
  t.notOk(
    shards.calls.some((c) => c.command.replayOnly !== true),
    'no shard was asked to decide: only replays were asked for',
  );
});

t.test('a shard that does not answer the replay probe does not hide the hold another one replays', async (t) => {
  const now = Date.now();
  const held: ShardResult = {
    ok: true,
    type: 'held',
    hold: { holdId: 'h-probe', customer: 'alice', seats: ['A-3-1', 'A-3-2'], quantity: 2, createdAt: now, expiresAt: now + 60_000 },
  };
  let lost = true;
  const nothing: ShardResult = { ok: false, type: 'unavailable', seats: [], message: 'nothing decided' };
  shards.answer = ({ shard, command }) => {
    if (command.type !== 'hold-best') return { ok: false, type: 'invalid', field: 'type', message: 'unscripted' };
    if (lost) {
      // The first attempt: nothing to replay; shard 0 has no room, shard 1 holds strictly and its answer is lost.
      if (command.replayOnly === true) return nothing;
      return shard === 1 && command.strictOrphans === true ? 'silence' : { ok: false, type: 'unavailable', seats: [], message: 'no room' };
    }
    // The retry's probe: shard 0 no longer answers at all; shard 1 replays the hold.
    if (shard === 0) return 'silence';
    return command.strictOrphans === true ? held : nothing;
  };
  const path = eventPath(spec, '/holds');
  const body = { section: 'A', quantity: 2 };
  t.equal((await call(harness.url, 'POST', path, { token: alice, key: 'alice-best-2', body })).status, 503);
  lost = false;
  const retry = await call(harness.url, 'POST', path, { token: alice, key: 'alice-best-2', body });
  t.equal(retry.status, 201, retry.text.slice(0, 200));
  t.equal(retry.body.holdId, 'h-probe');
});

t.test('a new request is not held up by a shard that does not answer: the one before it holds', async (t) => {
  // Only a key left unknown can have been carried out; a new one is walked at once. Asking every
  // shard first would make a silent shard (a failover) fail every new request for the section.
  const now = Date.now();
  shards.calls.length = 0;
  shards.answer = ({ shard, command }) => {
    if (command.type !== 'hold-best') return { ok: false, type: 'invalid', field: 'type', message: 'unscripted' };
    if (shard === 1) return 'silence';
    if (command.replayOnly === true) return { ok: false, type: 'unavailable', seats: [], message: 'nothing decided' };
    return {
      ok: true,
      type: 'held',
      hold: { holdId: 'h-new', customer: 'alice', seats: ['A-4-1', 'A-4-2'], quantity: 2, createdAt: now, expiresAt: now + 60_000 },
    };
  };
  const path = eventPath(spec, '/holds');
  const answer = await call(harness.url, 'POST', path, { token: alice, key: 'alice-best-3', body: { section: 'A', quantity: 2 } });
  t.equal(answer.status, 201, answer.text.slice(0, 200));
  t.equal(answer.body.holdId, 'h-new');
  t.same(
    shards.calls.map((c) => [c.shard, c.command.replayOnly === true]),
    [[0, false]],
    'shard 0 was asked to decide, and nothing else was asked',
  );
});
