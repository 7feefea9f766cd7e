/**
 * An engine that NATS no longer reaches serves no one: it must give its shards to an engine that
 * can serve them — but when NATS is gone for every engine, nobody should hand anything round.
 * Each engine here reaches NATS through a TCP relay the test can silence (packets dropped, the
 * connection left open: the NATS client notices nothing for a while) — or stall (bytes held back,
 * none lost, then delivered: one silence, and the link is whole again).
 */
import { connect, createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import type { ShardResult } from '../../../src/domain/commands.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { ShardDriver } from '../../support/shard-driver.js';
import {
  provisionTestEvent,
  shardOwners,
  sleep,
  startEngine,
  testDatabase,
  testLayout,
  waitFor,
  type EngineProcess,
} from '../../support/stack.js';
import { tcpRelay, type TcpRelay } from '../../support/tcp-relay.js';

const SHARDS = 4;
const LEASE_TTL_MS = 2000; // startEngine's

/** A TCP relay on loopback whose forwarding can be stalled: bytes wait (nothing is dropped, nothing closed) until it resumes. */
async function stallableRelay(host: string, port: number) {
  const sockets = new Set<Socket>();
  let stalled = false;
  const server = createServer((client) => {
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
      if (stalled) socket.pause();
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    stall: () => {
      stalled = true;
      for (const socket of sockets) socket.pause();
    },
    resume: () => {
      stalled = false;
      for (const socket of sockets) socket.resume();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function setup(t: Test) {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'nats-cut-off-test' });
  t.teardown(() => nc.close());
  const spec = await provisionTestEvent(pool, { shardCount: SHARDS, layout: testLayout({ rows: 4, seats: 20 }) });
  const nats = new URL(testConfig().natsUrl.split(',')[0]!);
  const relays: TcpRelay[] = [];
  const engines: EngineProcess[] = [];
  for (let i = 0; i < 2; i++) {
    const relay = await tcpRelay(nats.hostname, Number(nats.port));
    t.teardown(() => relay.close());
    relays.push(relay);
    const engine = await startEngine(spec.eventId, { NATS_URL: `nats://127.0.0.1:${relay.port}` });
    t.teardown(() => engine.stop());
    engines.push(engine);
  }
  const owned = (engine: EngineProcess) => engine.metric('sentinel_engine_owned_shards');
  await waitFor('two shards each', async () => (await owned(engines[0]!)) === 2 && (await owned(engines[1]!)) === 2);
  const driver = new ShardDriver(nc, spec, 3000);
  /** A one-shot reserve of the next free seat of each shard: what every shard answered. */
  let next = 0;
  const reserveOnEveryShard = async (): Promise<ShardResult[]> => {
    next++;
    return Promise.all(
      Array.from({ length: SHARDS }, (_, shard) =>
        driver.send(
          { type: 'reserve', key: `k-${shard}-${next}`, customer: `c-${shard}-${next}`, seat: driver.map.seatsOfShard(shard)[next]! },
          shard,
        ),
      ),
    );
  };
  return { pool, spec, relays, engines, owned, reserveOnEveryShard };
}

t.test('an engine cut off from NATS alone hands its shards to the engine NATS still reaches', async (t) => {
  const { pool, spec, relays, engines, owned, reserveOnEveryShard } = await setup(t);
  t.same(
    (await reserveOnEveryShard()).map((r) => r.type),
    Array(SHARDS).fill('confirmed'),
    'every shard serves before the cut',
  );
  const [cut, healthy] = engines as [EngineProcess, EngineProcess];
  relays[0]!.blackhole();
  const cutAt = Date.now();

  await waitFor('the healthy engine serves every shard', async () => (await owned(healthy)) === SHARDS, 20_000);
  const tookMs = Date.now() - cutAt;
  t.equal(await owned(cut), 0, 'the cut-off engine serves none');
  t.equal(await cut.metric('sentinel_engine_nats_link'), 0, 'and says its link is cut');
  t.ok(
    cut.logs.some((line) => line.includes('Cut off from NATS: handing shards to engines that can serve them')),
    'it handed its shards off (rather than losing its leases)',
  );
  t.ok(tookMs < LEASE_TTL_MS + 5000, `taken over ${tookMs} ms after the cut (a lease TTL, a round or two, the claims)`);
  const owners = await shardOwners(pool, spec.eventId);
  t.same([...owners.values()], Array(SHARDS).fill(healthy.id), 'Postgres names the healthy engine owner of every shard');
  t.same(
    (await reserveOnEveryShard()).map((r) => r.type),
    Array(SHARDS).fill('confirmed'),
    'every shard serves while one engine is cut off',
  );

  relays[0]!.restore(); // its connection is closed: the client reconnects at once
  await waitFor(
    'the engine is back and the shards are shared again',
    async () => (await owned(cut)) === 2 && (await owned(healthy)) === 2,
    20_000,
  );
  t.equal(await cut.metric('sentinel_engine_nats_link'), 1, 'its link is ok again');
  t.same(
    (await reserveOnEveryShard()).map((r) => r.type),
    Array(SHARDS).fill('confirmed'),
    'every shard serves after the link heals',
  );

  // Stopped while cut off: a drain of NATS over a silent link never ends, and one while the client
  // reconnects (NATS refusing connections) ends without closing the connection; neither may hold the stop.
  relays[0]!.blackhole();
  relays[1]!.refuse();
  for (const [engine, how] of [
    [cut, 'silent'],
    [healthy, 'refusing'],
  ] as const) {
    const stopping = Date.now();
    t.equal(await engine.stop(), 0, `an engine whose NATS link is ${how} stops cleanly`);
    t.ok(Date.now() - stopping < 15_000, `and promptly (${Date.now() - stopping} ms)`);
  }
});

t.test('when NATS is gone for every engine, each keeps its shards and serves them again when it is back', async (t) => {
  const { spec, relays, engines, owned, reserveOnEveryShard } = await setup(t);
  const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'nats-cut-off-test' });
  await connectRedis(redis);
  t.teardown(() => redis.disconnect());
  const claims = (engine: EngineProcess) => engine.logs.filter((line) => line.includes('Claimed shard')).length;
  const claimsBefore = engines.map(claims);
  for (const relay of relays) relay.blackhole();
  const silencedAt = Date.now();
  /** Whether every engine's link gauge reads `value` (1 ok, 0 cut). */
  const links = async (value: number) =>
    (await Promise.all(engines.map((engine) => engine.metric('sentinel_engine_nats_link')))).every((v) => v === value);
  await waitFor('both engines count their link as cut', () => links(0), 20_000);
  await sleep(LEASE_TTL_MS); // a lease TTL more of rounds in which either could hand off
  for (const engine of engines) {
    t.equal(await owned(engine), 2, `${engine.id} keeps its two shards`);
    t.notOk(
      engine.logs.some((line) => line.includes('handing shards to engines')),
      `${engine.id} handed nothing to an engine cut off too`,
    );
  }
  // Back one after the other: the first one back renews its membership while the other still
  // counts as cut — it must not be taken for an engine NATS reached all along.
  relays[0]!.restore();
  await waitFor('the first link is ok again', async () => (await engines[0]!.metric('sentinel_engine_nats_link')) === 1, 20_000);
  await sleep(1000); // rounds of both: the first renews, the second is still cut off
  // What the rule is about: the first engine back is a member again, renewing, but joined anew
  // after the second one's silence began — so it is not taken for one NATS reached all along.
  t.same(await redis.zrange(`sentinel:engines:${spec.eventId}`, 0, -1), [engines[0]!.id], 'the first engine back is the only member');
  const joined = Number(await redis.hget(`sentinel:engines:${spec.eventId}:joined`, engines[0]!.id));
  t.ok(joined > silencedAt, 'and it joined after the silence began');
  t.equal(await engines[1]!.metric('sentinel_engine_nats_link'), 0, 'the second engine was still cut off meanwhile');
  relays[1]!.restore();
  await waitFor('both links are ok again', () => links(1), 20_000);
  t.same(
    (await reserveOnEveryShard()).map((r) => r.type),
    Array(SHARDS).fill('confirmed'),
    'every shard serves again, by the engine that kept it',
  );
  t.same(engines.map(claims), claimsBefore, 'no shard was claimed (rebuilt) again');
  for (const engine of engines)
    t.notOk(
      engine.logs.some((line) => line.includes('handing shards to engines')),
      `${engine.id} handed nothing off while the links came back`,
    );
});

t.test('when NATS comes back for one engine only, the other hands it its shards once silent for 30 s', async (t) => {
  const { relays, engines, owned, reserveOnEveryShard } = await setup(t);
  const [stays, back] = [engines[0]!, engines[1]!];
  for (const relay of relays) relay.blackhole();
  const silencedAt = Date.now();
  const link = (engine: EngineProcess) => engine.metric('sentinel_engine_nats_link');
  await waitFor('both engines count their link as cut', async () => (await link(stays)) === 0 && (await link(back)) === 0, 20_000);
  relays[1]!.restore();
  await waitFor('the engine whose link is back says so', async () => (await link(back)) === 1, 20_000);
  // The engine still cut off keeps its shards while its silence is young: the one back joined anew
  // after that silence began, so it is not one NATS reached all along (the strict rule).
  await sleep(Math.max(0, silencedAt + 20_000 - Date.now()));
  t.equal(await owned(stays), 2, 'after 20 s of silence the cut-off engine still keeps its two shards');
  t.notOk(
    stays.logs.some((line) => line.includes('handing shards to engines')),
    'and has handed nothing off',
  );
  // After 30 s it also takes an engine NATS has reached for a lease TTL (the relaxed rule), or its
  // shards would answer nobody for as long as its own link stays down.
  await waitFor('the engine NATS reaches serves every shard', async () => (await owned(back)) === SHARDS, 40_000);
  const tookMs = Date.now() - silencedAt;
  t.ok(tookMs >= 30_000, `handed off only after 30 s of silence (${tookMs} ms)`);
  t.equal(await owned(stays), 0, 'the cut-off engine serves none');
  t.same(
    (await reserveOnEveryShard()).map((r) => r.type),
    Array(SHARDS).fill('confirmed'),
    'every shard serves, through the engine NATS reaches',
  );
  // Its NATS client has been reconnecting through the silent link for a while: its stop must not
  // wait for that (the process stayed alive for minutes after a clean stop before main's backstop).
  const stopping = Date.now();
  t.equal(await stays.stop(), 0, 'the engine cut off for long stops cleanly');
  t.ok(Date.now() - stopping < 15_000, `and promptly (${Date.now() - stopping} ms)`);
});

t.test("one stall of an engine's NATS link shorter than a lease TTL moves no shard", async (t) => {
  // A single silence of 0.75 TTL: suspect during it and for TTL/4 after the answer, so in trouble for
  // longer than a TTL in all — but it did not flap, and must not be taken for cut (the engine used
  // to hand its shards off once its link answered again, and claim them back a moment later).
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: SHARDS, layout: testLayout({ rows: 4, seats: 20 }) });
  const nats = new URL(testConfig().natsUrl.split(',')[0]!);
  const relay = await stallableRelay(nats.hostname, Number(nats.port));
  t.teardown(() => relay.close());
  const stalled = await startEngine(spec.eventId, { NATS_URL: `nats://127.0.0.1:${relay.port}` });
  t.teardown(() => stalled.stop());
  const other = await startEngine(spec.eventId);
  t.teardown(() => other.stop());
  const owned = (engine: EngineProcess) => engine.metric('sentinel_engine_owned_shards');
  await waitFor('two shards each', async () => (await owned(stalled)) === 2 && (await owned(other)) === 2);
  const count = (engine: EngineProcess, text: string) => engine.logs.filter((line) => line.includes(text)).length;
  const before = [stalled, other].map((engine) => [count(engine, 'Claimed shard'), count(engine, 'Handed off shard')]);

  // The stall ends on its own timer, not after a sample: a sample's scrapes are slow on a busy
  // machine, and a stall stretched past a TTL is a real cut.
  const stallMs = 0.75 * LEASE_TTL_MS;
  relay.stall();
  const resume = setTimeout(() => relay.resume(), stallMs);
  t.teardown(() => clearTimeout(resume));
  const seen = new Set<string>();
  // Long enough for the hand-off and the claims back the first rule made (a TTL into the stall, and
  // once the link was ok again), and for the link to be trusted again.
  const after = Date.now() + stallMs + 2 * LEASE_TTL_MS;
  while (Date.now() < after) {
    seen.add(`${await owned(stalled)}/${await owned(other)}`);
    await sleep(100);
  }

  t.ok(
    stalled.logs.some((line) => line.includes('NATS does not answer')),
    'the stall was long enough for the engine to suspect its link',
  );
  t.notOk(
    stalled.logs.some((line) => line.includes('Cut off from NATS')),
    'but it never counted it as cut',
  );
  t.equal(await stalled.metric('sentinel_engine_nats_link'), 1, 'its link is ok again');
  t.same([...seen], ['2/2'], 'each engine owned its two shards throughout');
  t.same(
    [stalled, other].map((engine) => [count(engine, 'Claimed shard'), count(engine, 'Handed off shard')]),
    before,
    'no shard was handed off or claimed',
  );
});
