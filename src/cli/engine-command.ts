import { createKafka, openProducerSession } from '../adapters/kafka/client.js';
import { closeNats, connectNats } from '../adapters/nats/connection.js';
import { createPgPool } from '../adapters/postgres/pool.js';
import { connectRedis, createRedis } from '../adapters/redis/client.js';
import { Engine } from '../engine/engine.js';
import { startProbeServer } from '../engine/http.js';
import { EngineMetrics } from '../engine/metrics.js';
import { createRedlock } from '../engine/shard-lease.js';
import type { Command } from './commands.js';
import { parseFlags } from './flags.js';
import { listening } from './listen.js';
import { untilSignal } from './signals.js';

const HELP = `Usage: sentinel engine [--no-relay]

Hosts inventory shard actors until SIGTERM: claims shards (Redis lease, then an epoch bump in
Postgres), rebuilds and serves them over NATS, group-commits to Postgres and relays the outbox to
Kafka; on SIGTERM it hands its shards off to the other engines. Serves /healthz, /readyz and
/metrics on SENTINEL_HTTP_PORT (default 9464).
  --no-relay  do not relay the outbox to Kafka (its rows wait for an engine that relays)

Configuration comes from environment variables (DATABASE_URL, REDIS_URL, NATS_URL, KAFKA_BROKERS,
SENTINEL_ENGINE_ID, SENTINEL_EVENT, SENTINEL_LEASE_TTL_MS, …): see README.md, "Configuration", and
src/config.ts.
`;

/** `sentinel engine`: claims and serves inventory shards until SIGTERM, then hands them off. */
export const engineCommand: Command = {
  summary: 'host inventory shard actors (claims shards, serves NATS, group-commits to Postgres, relays the outbox)',
  async run({ config, log, argv, stdout, stderr }) {
    // Before anything connects: `--help` or a mistyped flag must not start an engine that claims shards.
    const parsed = parseFlags(
      { argv, stdout, stderr },
      { 'no-relay': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
      HELP,
    );
    if ('exit' in parsed) return parsed.exit;
    const relay = !parsed.values['no-relay'];
    const pool = createPgPool({
      url: config.databaseUrl,
      max: config.pgPoolSize,
      log,
      applicationName: `sentinel-engine-${config.engineId}`,
    });
    // Bounded commands: a Redis behind a link that silently drops packets must not hold up the
    // rebalance round, nor a SIGTERM's hand-off (which waits for that round), until TCP gives up.
    // A lease extension that times out is retried while the lease lasts (ShardLease).
    const redis = createRedis({
      url: config.redisUrl,
      log,
      name: `engine-${config.engineId}`,
      commandTimeoutMs: Math.max(250, Math.floor(config.leaseTtlMs / 2)),
    });
    // Redis unreachable stops the process (a DependencyError naming REDIS_URL): the client stops
    // reconnecting, so that nothing keeps it alive.
    await connectRedis(redis).catch((error: unknown) => {
      redis.disconnect();
      throw error;
    });
    const nc = await connectNats({ url: config.natsUrl, log, name: `engine-${config.engineId}` });
    const metrics = new EngineMetrics();
    const kafka = relay ? createKafka({ brokers: config.kafkaBrokers, clientId: `sentinel-engine-${config.engineId}`, log }) : undefined;
    const engine = new Engine({
      config,
      log,
      pool,
      redis,
      redlock: createRedlock(redis),
      nc,
      metrics,
      ...(kafka ? { connectProducer: () => openProducerSession(kafka, config.reservationsTopic) } : {}),
    });
    // A port taken stops the engine — before it claims any shard — with one line naming the setting.
    const probes = await listening(
      startProbeServer({ port: config.httpPort, registry: metrics.registry, ready: () => engine.isReady() }),
      "the engine's health and metrics server",
      'SENTINEL_HTTP_PORT',
    ).catch(async (error: unknown) => {
      await closeNats(nc);
      redis.disconnect();
      await pool.end();
      throw error;
    });
    engine.start();
    log.info({ engineId: config.engineId, httpPort: config.httpPort, relay }, 'Engine started');
    const cue = await untilSignal(config);
    log.info({ cue }, 'Engine stopping: handing off shards');
    await engine.stop();
    await closeNats(nc);
    redis.disconnect();
    await pool.end();
    probes.close();
    log.info('Engine stopped');
    return 0;
  },
};
