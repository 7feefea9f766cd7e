/**
 * The benchmarks' two baseline servers, each run as a process of its own so it competes for the
 * machine the way Sentinel's processes do:
 *
 *   node dist/seed/serve.js seed --port N   the design Sentinel replaces (seed-app.ts), with its
 *                                            own Postgres pool, Redis client and Kafka producer
 *   node dist/seed/serve.js noop --port N   the ceiling of the HTTP layer: a Koa route that answers
 *                                            201 `{}` at once (`GET /readyz` answers 200)
 *
 * They live here rather than in bench/ so that `npm run build` compiles them with Sentinel: the
 * benchmarks run every server from the same compiled build (bench/build.ts), never one through tsx
 * and another not. Connection settings come from the environment, as for `sentinel`.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Koa from 'koa';
import { createKafka, ensureTopic } from '../adapters/kafka/client.js';
import { connectRedis, createRedis } from '../adapters/redis/client.js';
import { loadConfig } from '../config.js';
import { createRootLogger } from '../log.js';
import { createSeedApp, createSeedPool } from './seed-app.js';

/** The Kafka topic the seed design sends its reservations to. */
export const SEED_TOPIC = 'seed.reservations';

/** Starts the no-op ceiling on 127.0.0.1:`port`; resolves once it listens. */
export async function serveNoop(port: number): Promise<void> {
  const app = new Koa();
  app.use(async (ctx) => {
    if (ctx.path === '/readyz' || ctx.path === '/healthz') ctx.body = { status: 'ok' };
    else {
      ctx.status = 201;
      ctx.body = {};
    }
  });
  const server = app.listen(port, '127.0.0.1');
  server.keepAliveTimeout = 65_000;
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
  await new Promise<void>((resolve) => server.once('listening', resolve));
}

/** Starts the seed design on 127.0.0.1:`port` with its own connections; resolves once it listens. */
export async function serveSeed(port: number): Promise<void> {
  const config = loadConfig(process.env);
  const log = createRootLogger({ level: 'warn', role: 'seed' });
  // The seed ran on HikariCP's default pool of 10; 20 gives it more room, not less. Pipelined, so
  // a transaction's BEGIN goes with its first query, as pgjdbc sends it (createSeedPool).
  const pool = createSeedPool({ url: config.databaseUrl, max: 20, log, applicationName: 'seed-design' });
  // Auto-pipelining on, as Sentinel's ingress has it. The Java clients keep many commands in flight:
  // Lettuce (Spring's default) pipelines every thread's commands on one connection without waiting
  // for replies; Redisson, which the seed named, runs one command at a time on each of up to 64
  // pooled connections. ioredis already keeps every command in flight on its one connection without
  // the option; with it, it also writes the commands issued in one event-loop turn together (the
  // next batch when the previous one is answered), sparing the seed's single thread and Redis a
  // write and a read per command, where Java spreads its writes over Netty's I/O threads. Measured
  // on a rush of 1,000 concurrent lock attempts, mostly refused as in the benchmark's, it answered
  // about 1.5 × as many per second for less CPU in Node and a sixth of it in Redis (on lock and
  // unlock pairs alone, without refusals, it was about even), so off would be the handicap. It
  // changes no answer and no order: each command gets its own reply, and a request's unlock is
  // still issued only after its Kafka acknowledgement.
  const redis = createRedis({ url: config.redisUrl, log, name: 'seed-design', autoPipelining: true });
  await connectRedis(redis);
  const kafka = createKafka({ brokers: config.kafkaBrokers, clientId: 'seed-design', log });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, SEED_TOPIC);
  await admin.disconnect();
  // Plain producer, acks=all, unlimited requests in flight: the most generous reading of a
  // synchronous KafkaTemplate.send().get(). kafkajs has no accumulator batching records across
  // calls, as the Java producer's has: the seed app collects the records of each event-loop turn
  // into one request itself (createSeedKafkaSend), and each request still awaits its own record.
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const { app } = createSeedApp({ pool, redis, producer, topic: SEED_TOPIC, lockTtlMs: 30_000 });
  const server = app.listen(port, '127.0.0.1');
  server.keepAliveTimeout = 65_000;
  process.once('SIGTERM', () => {
    server.close(() => undefined);
    void Promise.allSettled([producer.disconnect(), pool.end(), redis.quit()]).then(() => process.exit(0));
  });
  await new Promise<void>((resolve) => server.once('listening', resolve));
}

/** This module as a program: `serve.js (seed|noop) --port N`. */
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { port: { type: 'string', default: '0' } } });
  const port = Number(values.port);
  const which = positionals[0];
  if (which === 'seed') await serveSeed(port);
  else if (which === 'noop') await serveNoop(port);
  else {
    process.stderr.write('usage: serve.js (seed|noop) --port N\n');
    process.exit(2);
  }
}
