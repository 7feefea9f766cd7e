/**
 * The shard lease on a real Redis, reached through a TCP relay the test can cut off: the engine
 * loses its path to Redis while Redis itself (and so every other engine) is fine — the extension
 * is sent and never answered. The lease must count as lost when it runs out, not whenever (if
 * ever) the extension settles: from then on another engine may own the shard.
 */
import t, { type Test } from 'tap';
import { createRedis, connectRedis, type Redis } from '../../../src/adapters/redis/client.js';
import { createRedlock, ShardLease } from '../../../src/engine/shard-lease.js';
import { pino } from 'pino';
import { silentLogger, type Logger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { waitFor } from '../../support/stack.js';
import { tcpRelay } from '../../support/tcp-relay.js';

/** A connected Redis client (closed after the test). */
async function client(t: Test, url = testConfig().redisUrl) {
  const redis = createRedis({ url, log: silentLogger, name: 'lease-test' });
  t.teardown(() => redis.disconnect());
  await connectRedis(redis);
  return redis;
}

/** A Redis client that reaches the real Redis through a relay the test can cut off. */
async function relayedRedis(t: Test) {
  const target = new URL(testConfig().redisUrl);
  const relay = await tcpRelay(target.hostname, Number(target.port));
  t.teardown(relay.close);
  return { relay, redis: await client(t, `redis://127.0.0.1:${relay.port}`) };
}

/** A lease on a fresh key through `redis` (released after the test), and why it was lost, if it was. */
async function freshLease(t: Test, redis: Redis, ttlMs: number, log: Logger = silentLogger) {
  const key = `sentinel:lease:${uniqueName('t')}:0`;
  const lost: string[] = [];
  const lease = await ShardLease.tryAcquire(createRedlock(redis), key, ttlMs, log, (reason) => lost.push(reason));
  if (lease === undefined) throw new Error('the lease was not acquired');
  t.teardown(() => lease.release());
  return { key, lease, lost };
}

t.test('a lease whose extension never comes back is lost when it runs out', async (t) => {
  const { relay, redis } = await relayedRedis(t);
  const ttlMs = 600;
  const { lease, lost } = await freshLease(t, redis, ttlMs);
  t.ok(lease.isHeld);

  // Extended while Redis answers: still held well past one TTL.
  await new Promise((resolve) => setTimeout(resolve, ttlMs * 2));
  t.ok(lease.isHeld, 'extended while Redis answers');
  t.same(lost, []);

  relay.blackhole();
  const cutAt = Date.now();
  const expiresAt = lease.expiresAt;
  await waitFor('the lease to be lost', () => lost.length > 0 || undefined, ttlMs * 3, 10);
  t.match(lost, [/ran out/], 'lost because it ran out, while the extension is still unanswered');
  t.ok(Date.now() >= expiresAt, 'not before its expiry');
  t.ok(Date.now() - cutAt <= ttlMs + 200, `within a TTL of the cut (${Date.now() - cutAt} ms)`);
  t.notOk(lease.isHeld);
});

t.test('a released lease is no longer held and can be taken by another engine at once', async (t) => {
  const redis = await client(t);
  const redlock = createRedlock(redis);
  const key = `sentinel:lease:${uniqueName('t')}:0`;
  const first = await ShardLease.tryAcquire(redlock, key, 5000, silentLogger, () => undefined);
  if (first === undefined) throw new Error('the lease was not acquired');
  t.equal(await ShardLease.tryAcquire(redlock, key, 5000, silentLogger, () => undefined), undefined, 'taken while held');
  await first.release();
  t.notOk(first.isHeld);
  const second = await ShardLease.tryAcquire(redlock, key, 5000, silentLogger, () => undefined);
  t.ok(second?.isHeld, 'taken by the next engine after the release');
  await second?.release();
});

t.test('a lease found run out by its owner is lost at once, and its key given back for the next owner', async (t) => {
  const redis = await client(t);
  const ttlMs = 900;
  const { key, lease, lost } = await freshLease(t, redis, ttlMs);
  t.ok(lease.holdOrLose(), 'held');
  // The owner's clock says the lease ran out (as after a pause) while Redis still has it and the
  // next extension will succeed: the owner stops acting on it now, not when a timer runs.
  const realNow = Date.now;
  Date.now = () => realNow() + ttlMs;
  try {
    t.notOk(lease.holdOrLose(), 'ran out');
  } finally {
    Date.now = realNow;
  }
  t.match(lost, [/ran out/], 'onLost fired at once');
  t.notOk(lease.isHeld);
  // Well before Redis would expire it: the next owner need not wait out the TTL.
  await waitFor('the key to be given back', async () => ((await redis.get(key)) === null ? true : undefined), ttlMs / 3, 10);
  t.same(lost.length, 1, 'lost once');
});

t.test('an outage of Redis shorter than the time the lease has left does not lose it', async (t) => {
  // Redis cannot be reached for 4.5 s (restarting: connections closed, new ones refused), longer
  // than an extension's period (4 s), shorter than the lease (12 s). The lease stays ours until it
  // runs out — nobody else can take it either — so the owner keeps trying, and keeps its shard.
  const { relay, redis } = await relayedRedis(t);
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
  const ttlMs = 12_000;
  const { key, lease, lost } = await freshLease(t, redis, ttlMs, log);

  relay.refuse();
  await new Promise((resolve) => setTimeout(resolve, 4500));
  t.ok(warnings.includes('Shard lease not extended; retrying'), 'an extension failed while Redis was away');
  t.same(lost, [], 'and the lease was kept');
  const before = lease.expiresAt;
  relay.restore();
  await waitFor('an extension once Redis is back', () => lease.expiresAt > before || lost.length > 0 || undefined, ttlMs, 50);
  t.same(lost, [], 'never lost');
  t.ok(lease.isHeld, 'held, and extended again');
  t.ok((await redis.pttl(key)) > ttlMs / 2, 'the key is ours in Redis, with a fresh TTL');
});

t.test('an extension Redis refuses — the key is no longer ours — loses the lease at once, not when it runs out', async (t) => {
  const redis = await client(t);
  const ttlMs = 3000;
  const { key, lease, lost } = await freshLease(t, redis, ttlMs);
  const expiresAt = lease.expiresAt;
  // Redis forgot the lease (a crash before its file was written) and another engine took it.
  await redis.set(key, 'another-engine', 'PX', 10_000);
  await waitFor('the lease to be lost', () => lost.length > 0 || undefined, ttlMs, 10);
  t.match(lost, [/extension failed/], 'lost because Redis refused the extension');
  t.ok(Date.now() < expiresAt, 'before it would have run out');
  t.notOk(lease.isHeld);
  t.equal(await redis.get(key), 'another-engine', "the other engine's key is left alone");
});
