/**
 * `sentinel ingress`: the REST API. Connects to Redis, NATS and Postgres, serves until SIGTERM or
 * SIGINT, then stops gracefully (see serveIngress) and closes its connections.
 */
import { assertTokenConfig, parsePort } from '../config.js';
import { closeNats, connectNats } from '../adapters/nats/connection.js';
import { createPgPool } from '../adapters/postgres/pool.js';
import { connectRedis, createRedis } from '../adapters/redis/client.js';
import { createIngressApp } from '../ingress/app.js';
import { closeSettleMs } from '../ingress/routes/commands.js';
import { createTokenVerifier } from '../ingress/auth.js';
import { clusterMetrics, isClusterWorker, leaveCluster, superviseWorkers } from '../ingress/cluster.js';
import { createIngressMetrics } from '../ingress/metrics.js';
import { REDIS_COMMAND_TIMEOUT_MS } from '../ingress/command-gate.js';
import { serveIngress } from '../ingress/server.js';
import { untilSignal } from './signals.js';
import type { Command } from './commands.js';
import { checkFlags, parseFlags } from './flags.js';
import { listening } from './listen.js';

/** How often a serving process looks at its own clients' state (ms): see `broken` below. */
const BREAKAGE_LOOK_MS = 5000;

const HELP = `Usage: sentinel ingress [--port N] [--host ADDR] [--workers N] [--drain-delay-ms N] [--grace-ms N]

Serves the REST API (see docs/openapi.json, also at /openapi.json).
  --port            listen port (default SENTINEL_INGRESS_PORT, 8080)
  --host            listen address (default all addresses: :: (dual-stack) where IPv6 is available,
                    else 0.0.0.0)
  --workers         processes serving the port (default SENTINEL_INGRESS_WORKERS, 1); above 1 a
                    supervisor forks them, restarts one that dies, and sums their /metrics
  --drain-delay-ms  on SIGTERM, report not ready this long before closing the listener (default 0;
                    in Kubernetes set it a little above the readiness probe period)
  --grace-ms        how long requests in flight may take to finish on shutdown (default 10000)
`;

export const ingressCommand: Command = {
  summary: 'serve the REST API (auth, idempotency, admission, routing to shards)',
  async run({ config, log, argv, stdout, stderr }) {
    const parsed = parseFlags(
      { argv, stdout, stderr },
      {
        port: { type: 'string' },
        host: { type: 'string' },
        workers: { type: 'string' },
        'drain-delay-ms': { type: 'string', default: '0' },
        'grace-ms': { type: 'string', default: '10000' },
        help: { type: 'boolean', short: 'h' },
      },
      HELP,
    );
    if ('exit' in parsed) return parsed.exit;
    const { values } = parsed;
    assertTokenConfig(config);
    // The rule of every port (parsePort), so that one past 65535 is refused here, not by listen
    // once everything is connected.
    const checkedPort = checkFlags({ stderr }, HELP, () =>
      values.port === undefined ? config.ingressPort : parsePort(values.port, '--port'),
    );
    if ('exit' in checkedPort) return checkedPort.exit;
    const port = checkedPort.value;
    const drainDelayMs = Number(values['drain-delay-ms']);
    const graceMs = Number(values['grace-ms']);
    const workers = values.workers === undefined ? config.ingressWorkers : Number(values.workers);
    if (![drainDelayMs, graceMs].every((n) => Number.isInteger(n) && n >= 0)) {
      stderr.write(`--drain-delay-ms and --grace-ms take non-negative integers\n\n${HELP}`);
      return 2;
    }
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
      stderr.write(`--workers takes an integer from 1 to 64\n\n${HELP}`);
      return 2;
    }
    if (workers > 1 && !isClusterWorker()) return superviseWorkers({ workers, log, stop: untilSignal(config) });

    const redis = createRedis({
      url: config.redisUrl,
      log,
      name: 'sentinel-ingress',
      autoPipelining: true,
      commandTimeoutMs: REDIS_COMMAND_TIMEOUT_MS,
    });
    // Redis unreachable stops the process (a DependencyError naming REDIS_URL): the client stops
    // reconnecting, so that nothing keeps it alive.
    await connectRedis(redis).catch((error: unknown) => {
      redis.disconnect();
      throw error;
    });
    const nc = await connectNats({ url: config.natsUrl, log, name: 'sentinel-ingress' });
    const pg = createPgPool({ url: config.databaseUrl, max: config.pgPoolSize, log, applicationName: 'sentinel-ingress' });
    const tokens = createTokenVerifier(
      config.jwksUrl
        ? { jwksUrl: config.jwksUrl, issuer: config.jwtIssuer, audience: config.jwtAudience }
        : { secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience },
    );
    const metrics = createIngressMetrics();
    const app = createIngressApp({
      log,
      metrics,
      ...(isClusterWorker() ? { metricsText: clusterMetrics(metrics.registry) } : {}),
      redis,
      nc,
      pg,
      tokens,
      settings: { shardTimeoutMs: config.shardTimeoutMs, idempotencyTtlS: config.idempotencyTtlS, closeSettleMs: closeSettleMs(config) },
    });
    // No --host: every address (`::`, dual-stack, where IPv6 is available, else 0.0.0.0), so an
    // IPv6-only pod answers on its IPv6 address. A port taken (or an address this machine does not
    // have) stops the process with one line naming the setting; its clients closed first.
    const portSetting = values.port === undefined ? 'SENTINEL_INGRESS_PORT' : '--port';
    const running = await listening(
      serveIngress(app, {
        port,
        ...(values.host === undefined ? {} : { host: values.host }),
        backlog: config.ingressBacklog,
        log,
      }),
      'the ingress',
      values.host === undefined ? portSetting : `--host and ${portSetting}`,
    ).catch(async (error: unknown) => {
      app.readiness.markShuttingDown();
      await Promise.allSettled([closeNats(nc), redis.quit(), pg.end()]);
      throw error;
    });
    log.info({ url: running.url, auth: config.jwksUrl ? 'jwks' : 'hs256' }, 'Ingress listening');

    // A process whose own client broke for good (/healthz fails) stops by itself, so that it is
    // started again: a worker of --workers N by its supervisor — the kubelet's liveness probe, which
    // lands on any worker, might never see three failures of the same one in a row — and a single
    // process by Kubernetes, sooner than its probes would.
    const breakage = app.readiness.untilBroken(BREAKAGE_LOOK_MS);
    const cue = await Promise.race([untilSignal(config), breakage.broken.then(() => 'broken' as const)]);
    breakage.stop();
    // A worker's supervisor forwards the stop (SIGTERM; a worker leaves Ctrl-C to it, see
    // superviseWorkers). The first signal starts the graceful stop, and a second must not cut it short.
    if (isClusterWorker()) for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => undefined);
    if (cue === 'broken')
      log.error({ failed: app.readiness.health().failed }, 'A client of the ingress broke for good; stopping to be started again');
    log.info({ cue, drainDelayMs, graceMs }, 'Shutting down ingress');
    await running.close({ drainDelayMs, graceMs });
    await Promise.allSettled([closeNats(nc), redis.quit(), pg.end()]);
    log.info('Ingress stopped');
    leaveCluster();
    return cue === 'broken' ? 1 : 0;
  },
};
