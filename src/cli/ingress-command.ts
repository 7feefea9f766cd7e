/**
 * `sentinel ingress`: the REST API. Connects to Redis, NATS and Postgres, serves until SIGTERM or
 * SIGINT, then stops gracefully (see serveIngress) and closes its connections.
 */
import { parseArgs } from 'node:util';
import { assertTokenConfig } from '../config.js';
import { connectNats } from '../adapters/nats/connection.js';
import { createPgPool } from '../adapters/postgres/pool.js';
import { connectRedis, createRedis } from '../adapters/redis/client.js';
import { createIngressApp } from '../ingress/app.js';
import { createTokenVerifier } from '../ingress/auth.js';
import { serveIngress } from '../ingress/server.js';
import type { Command } from './commands.js';

const HELP = `Usage: sentinel ingress [--port N] [--host ADDR] [--drain-delay-ms N] [--grace-ms N]

Serves the REST API (see docs/openapi.json, also at /openapi.json).
  --port            listen port (default SENTINEL_INGRESS_PORT, 8080)
  --host            listen address (default 0.0.0.0)
  --drain-delay-ms  on SIGTERM, report not ready this long before closing the listener (default 0;
                    in Kubernetes set it a little above the readiness probe period)
  --grace-ms        how long requests in flight may take to finish on shutdown (default 10000)
`;

export const ingressCommand: Command = {
  summary: 'serve the REST API (auth, idempotency, admission, routing to shards)',
  async run({ config, log, argv, stdout, stderr }) {
    let values;
    try {
      ({ values } = parseArgs({
        args: [...argv],
        options: {
          port: { type: 'string' },
          host: { type: 'string', default: '0.0.0.0' },
          'drain-delay-ms': { type: 'string', default: '0' },
          'grace-ms': { type: 'string', default: '10000' },
          help: { type: 'boolean', short: 'h' },
        },
      }));
    } catch (error) {
      stderr.write(`${(error as Error).message}\n\n${HELP}`);
      return 2;
    }
    if (values.help) {
      stdout.write(HELP);
      return 0;
    }
    assertTokenConfig(config);
    const port = values.port === undefined ? config.ingressPort : Number(values.port);
    const drainDelayMs = Number(values['drain-delay-ms']);
    const graceMs = Number(values['grace-ms']);
    if (![port, drainDelayMs, graceMs].every((n) => Number.isInteger(n) && n >= 0)) {
      stderr.write(`--port, --drain-delay-ms and --grace-ms take non-negative integers\n\n${HELP}`);
      return 2;
    }

    const redis = createRedis({ url: config.redisUrl, log, name: 'sentinel-ingress', autoPipelining: true });
    await connectRedis(redis);
    const nc = await connectNats({ url: config.natsUrl, log, name: 'sentinel-ingress' });
    const pg = createPgPool({ url: config.databaseUrl, max: config.pgPoolSize, log, applicationName: 'sentinel-ingress' });
    const tokens = createTokenVerifier(
      config.jwksUrl
        ? { jwksUrl: config.jwksUrl, issuer: config.jwtIssuer, audience: config.jwtAudience }
        : { secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience },
    );
    const app = createIngressApp({
      log,
      redis,
      nc,
      pg,
      tokens,
      settings: { shardTimeoutMs: config.shardTimeoutMs, idempotencyTtlS: config.idempotencyTtlS },
    });
    const running = await serveIngress(app, { port, host: values.host, log });
    log.info({ url: running.url, auth: config.jwksUrl ? 'jwks' : 'hs256' }, 'Ingress listening');

    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal, drainDelayMs, graceMs }, 'Shutting down ingress');
    await running.close({ drainDelayMs, graceMs });
    await Promise.allSettled([nc.drain(), redis.quit(), pg.end()]);
    log.info('Ingress stopped');
    return 0;
  },
};
