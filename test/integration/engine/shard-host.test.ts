/**
 * A shard host on real NATS and Postgres.
 * - With a scripted decider: one command that cannot be decided (a bug) gets an error of its own,
 *   the other commands of its message still get answers, and the shard stops deciding, to be
 *   rebuilt (its memory may be half changed).
 * - With the real decider: a refusal names a seat as sold (which the ingress then refuses for a
 *   minute without asking) only once the sale's commit has landed; a sale whose commit is fenced
 *   never happened, and the next owner sells the seat.
 */
import t, { type Test } from 'tap';
import type { NatsConnection } from 'nats';
import type pg from 'pg';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { InventoryStore } from '../../../src/adapters/postgres/inventory-store.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import type { EventSpec } from '../../../src/engine/provision.js';
import { ShardClient } from '../../../src/engine/shard-client.js';
import type { ShardHostOptions } from '../../../src/engine/shard-host.js';
import { decodeReplies, encode, shardSubject } from '../../../src/engine/protocol.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { testDecider, testShardHost } from '../../support/shard-host.js';
import { provisionTestEvent, testDatabase, testLayout, waitFor, waitForBlockedCommit } from '../../support/stack.js';

const reserveCommand = (key: string): ShardCommand => ({ type: 'reserve', key, customer: key, seat: 'A-1-1' });

/** Starts a host of shard 0 on `nc` with the tests' settings; `stops` lists why it stopped. */
async function startHost(
  nc: NatsConnection,
  options: Pick<ShardHostOptions, 'eventId' | 'epoch' | 'rules' | 'leaseHeld' | 'topic' | 'decider' | 'store'>,
) {
  const stops: string[] = [];
  const host = testShardHost({ ...options, nc, onStopped: (reason) => stops.push(reason) });
  host.start();
  await nc.flush();
  return { host, stops };
}

/**
 * A host on real NATS whose decider refuses every command ('unavailable') and throws on the key
 * 'boom' — until drained, when it answers not-serving as the real one does; `decided` lists the
 * keys it decided, in order, and `stops` why the host stopped.
 */
async function scriptedHost(t: Test, leaseHeld: () => boolean = () => true) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'shard-host-test' });
  t.teardown(() => nc.close());
  const eventId = uniqueName('host');
  const decided: string[] = [];
  let draining = false;
  const { host, stops } = await startHost(nc, {
    eventId,
    epoch: 1,
    rules: { holdTtlMs: 60_000, customerLimit: 4 },
    leaseHeld,
    topic: 'unused',
    decider: {
      decide(command: ShardCommand) {
        if (draining)
          return { result: { ok: false, type: 'not-serving', state: 'draining', retryable: true, message: 'draining' }, changes: [] };
        if (command.key === 'boom') throw new Error('a bug in the decider');
        decided.push(command.key);
        const result: ShardResult = { ok: false, type: 'unavailable', seats: ['A-1-1'], message: 'taken' };
        return { result, changes: [] };
      },
      abort: () => false,
      applyRules: () => undefined,
      drain: () => {
        draining = true;
      },
      expireAll: () => [],
      fence: () => undefined,
      stop: () => undefined,
    },
    store: new InventoryStore(pool),
  });
  t.teardown(() => host.handOff('closed'));
  const client = new ShardClient(nc);
  const send = (key: string) => client.send(eventId, 0, reserveCommand(key), { deadlineMs: 2000 }).catch((e: unknown) => e);
  return { host, nc, eventId, decided, stops, send };
}

t.test('a command the decider throws on is answered with an error, and the shard stops deciding', async (t) => {
  const { host, nc, eventId, decided, stops } = await scriptedHost(t);
  // One message, as the ingress batches them; asked directly, so every answer is seen as sent.
  const reply = await nc.request(
    shardSubject(eventId, 0),
    encode({ requests: ['first', 'boom', 'last'].map((key) => ({ command: reserveCommand(key) })) }),
    { timeout: 2000 },
  );
  const replies = new Map(decodeReplies(reply.data).replies);
  t.match(replies.get(0), { result: { type: 'unavailable' } });
  t.match(replies.get(1), { error: { code: 'decide_failed', retryable: false } }, 'not retryable: the same command would fail again');
  t.match(
    replies.get(2),
    { result: { type: 'not-serving', retryable: true } },
    'the command after it is answered too: not served here, retried with the next owner',
  );
  t.same(decided, ['first'], 'nothing was decided after the bug: memory may be half changed');
  await waitFor('the host to stop', () => stops.length > 0, 2000, 10);
  t.same(stops, ['faulted'], 'the shard is given up, to be rebuilt from Postgres');
  t.notOk(host.isServing);
});

t.test('a host whose lease ran out answers nothing from memory, not even a loser', async (t) => {
  // As a process paused past its lease sees it on waking: the requests that waited for it are
  // read before its lease timer fires.
  let held = true;
  const { host, nc, eventId, decided, send } = await scriptedHost(t, () => held);
  t.match(await send('before'), { type: 'unavailable' }, 'decided while the lease is held');
  held = false;
  // Asked directly, so the answer is seen as sent (the shard client would retry it until its deadline).
  const reply = await nc.request(shardSubject(eventId, 0), encode({ requests: [{ command: reserveCommand('after') }] }), { timeout: 2000 });
  t.match(decodeReplies(reply.data).replies, [[0, { result: { type: 'not-serving', state: 'lease-lost', retryable: true } }]]);
  t.same(decided, ['before'], 'the request after the lease ran out was not decided');
  t.notOk(host.isServing, 'the host stopped serving');
});

/** A one-shard sale of four seats on real Postgres and NATS. */
async function oneShardSale(t: Test) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'shard-host-test' });
  t.teardown(() => nc.close());
  const store = new InventoryStore(pool);
  const spec = await provisionTestEvent(pool, { layout: testLayout({ rows: 1, seats: 4 }), shardCount: 1 });
  return { pool, nc, store, spec, eventId: spec.eventId };
}

/**
 * Another engine's claim of shard 0, under way: its transaction holds the shard's row (so no commit
 * can land) until `commit`, which bumps the epoch and so fences the owner.
 */
async function claimInProgress(t: Test, pool: pg.Pool, eventId: string) {
  const claimer = await pool.connect();
  t.teardown(() => claimer.release());
  await claimer.query('BEGIN');
  await claimer.query(`UPDATE shards SET epoch = epoch + 1, owner = 'usurper' WHERE event_id = $1 AND shard = 0`, [eventId]);
  return { commit: () => claimer.query('COMMIT').then(() => undefined) };
}

/** Claims shard 0 of `spec` for `owner` and serves it with the real decider, as an engine would. */
async function serveShard(store: InventoryStore, nc: NatsConnection, spec: EventSpec, owner: string) {
  const { eventId } = spec;
  const epoch = await store.claimShard(eventId, 0, owner);
  const rows = await store.loadShard(eventId, 0, new Date(Date.now() - 60_000));
  const decider = testDecider((await store.getEvent(eventId))!, { rows });
  const { host, stops } = await startHost(nc, {
    eventId,
    epoch,
    rules: { holdTtlMs: spec.holdTtlMs, customerLimit: spec.customerLimit },
    leaseHeld: () => true,
    topic: testConfig().reservationsTopic,
    decider,
    store,
  });
  return { host, epoch, stops };
}

t.test('a refusal names a seat sold only once its sale committed; a fenced sale is not named and never happened', async (t) => {
  const { pool, nc, store, spec, eventId } = await oneShardSale(t);

  const serve = (owner: string) => serveShard(store, nc, spec, owner);
  const client = new ShardClient(nc);
  const reserve = (customer: string, seat: string, deadlineMs = 2000) =>
    client.send(eventId, 0, { type: 'reserve', key: `${customer}-${seat}`, customer, seat }, { deadlineMs }).catch((e: unknown) => e);

  const first = await serve('first-owner');
  // A committed sale: losers hear that the seat is sold.
  t.match(await reserve('alice', 'A-1-1'), { type: 'confirmed' });
  t.match(
    await reserve('bob', 'A-1-1'),
    { type: 'unavailable', seats: ['A-1-1'], sold: ['A-1-1'], soldTo: ['alice'] },
    'sold once committed, naming its buyer',
  );

  // A sale whose commit cannot land yet: another transaction holds the shard's row (and is about
  // to claim the shard, fencing this owner).
  const claimer = await claimInProgress(t, pool, eventId);
  const pending = reserve('carol', 'A-1-2', 1000);
  await waitForBlockedCommit(pool, 'the commit waiting for the shard row');
  const refusal = await reserve('dave', 'A-1-2');
  t.match(refusal, { type: 'unavailable', seats: ['A-1-2'] }, 'the seat is taken while its sale commits');
  t.notOk((refusal as { sold?: unknown }).sold, 'but not named sold: its commit has not landed');
  t.notOk((refusal as { soldTo?: unknown }).soldTo, 'nor its buyer');
  t.same((refusal as { pending?: unknown }).pending, ['A-1-2'], 'named pending: its announcement will follow the commit');
  const both = await client.send(
    eventId,
    0,
    { type: 'hold', key: 'erin-both', customer: 'erin', seats: ['A-1-2', 'A-1-1'] },
    { deadlineMs: 2000 },
  );
  const { seats, sold, soldTo, pending: named } = both as Extract<ShardResult, { type: 'unavailable' }>;
  t.same(
    { seats, sold, soldTo, pending: named },
    { seats: ['A-1-2', 'A-1-1'], sold: ['A-1-1'], soldTo: ['alice'], pending: ['A-1-2'] },
    'a seat sold earlier is still named in the meantime, with its own buyer (aligned)',
  );

  await claimer.commit();
  const lost = await pending;
  t.not((lost as ShardResult).type, 'confirmed', 'the fenced sale is not confirmed');
  await waitFor('the fenced host to stop', () => first.stops.length > 0 || undefined, 5000, 10);
  t.same(first.stops, ['fenced']);

  // The next owner reloads the seat as available and sells it.
  const second = await serve('second-owner');
  t.teardown(() => second.host.handOff('closed'));
  t.match(await reserve('frank', 'A-1-2'), { type: 'confirmed' }, 'the seat of the fenced sale is sold by the next owner');
  t.match(await reserve('grace', 'A-1-2'), { type: 'unavailable', sold: ['A-1-2'], soldTo: ['frank'] });
  t.match(
    await reserve('grace', 'A-1-1'),
    { type: 'unavailable', sold: ['A-1-1'], soldTo: ['alice'] },
    "a sale loaded from Postgres names its buyer (the sold seat's hold's customer)",
  );
  const { rows } = await pool.query<{ state: string }>(`SELECT state FROM seats WHERE event_id = $1 AND seat_id = 'A-1-2'`, [eventId]);
  t.same(rows, [{ state: 'sold' }]);
});

t.test('a refusal saying a hold was confirmed waits for the confirmation to commit; a fenced one is never named', async (t) => {
  const { pool, nc, store, spec, eventId } = await oneShardSale(t);
  const client = new ShardClient(nc);
  const send = (command: ShardCommand, deadlineMs = 2000) => client.send(eventId, 0, command, { deadlineMs }).catch((e: unknown) => e);

  const first = await serveShard(store, nc, spec, 'first-owner');
  const held = (await send({ type: 'hold', key: 'h1', customer: 'alice', seats: ['A-1-1'] })) as Extract<ShardResult, { type: 'held' }>;
  t.equal(held.type, 'held');
  const { holdId } = held.hold;
  // Committed: a second confirm (another key, as a double click makes) hears at once that it was.
  t.match(await send({ type: 'confirm', key: 'c1', customer: 'alice', holdId }), { type: 'confirmed' });
  t.match(await send({ type: 'confirm', key: 'c2', customer: 'alice', holdId }, 500), { type: 'hold-confirmed', holdId });

  const other = (await send({ type: 'hold', key: 'h2', customer: 'bob', seats: ['A-1-2'] })) as Extract<ShardResult, { type: 'held' }>;
  // Its confirmation cannot commit yet: another transaction holds the shard's row, about to claim it.
  const claimer = await claimInProgress(t, pool, eventId);
  const confirming = send({ type: 'confirm', key: 'c3', customer: 'bob', holdId: other.hold.holdId }, 1500);
  await waitForBlockedCommit(pool, 'the confirmation waiting for the shard row');
  const double = send({ type: 'confirm', key: 'c4', customer: 'bob', holdId: other.hold.holdId }, 1500);
  await claimer.commit();
  const [confirmed, doubled] = await Promise.all([confirming, double]);
  t.not((confirmed as ShardResult).type, 'confirmed', 'the fenced confirmation is not confirmed');
  t.not((doubled as ShardResult).type, 'hold-confirmed', 'and the second was not told it had been');
  t.ok(doubled instanceof Error, `it got a retryable error instead (${String(doubled)})`);
  await waitFor('the fenced host to stop', () => first.stops.length > 0 || undefined, 5000, 10);

  // The next owner has the hold live, and confirms it.
  const second = await serveShard(store, nc, spec, 'second-owner');
  t.teardown(() => second.host.handOff('closed'));
  t.match(await send({ type: 'confirm', key: 'c5', customer: 'bob', holdId: other.hold.holdId }), { type: 'confirmed' });
});
