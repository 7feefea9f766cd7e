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
import { createKafka } from '../adapters/kafka/client.js';
import { loadConfig } from '../config.js';
import { createRootLogger } from '../log.js';
import { connectSeedProducer, connectSeedRedis, createSeedApp, createSeedPool } from './seed-app.js';

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
  const redis = await connectSeedRedis({ url: config.redisUrl, log, name: 'seed-design' });
  const producer = await connectSeedProducer(createKafka({ brokers: config.kafkaBrokers, clientId: 'seed-design', log }), SEED_TOPIC);
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
