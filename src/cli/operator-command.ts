/**
 * `sentinel operator`: reconciles TicketEvents until SIGTERM. Loads the kubeconfig ($KUBECONFIG or
 * in-cluster) first, so a wrong one stops it before anything happens; connects Postgres and applies
 * the migrations, campaigns for the leader Lease, and while leading runs the controller. Exit code 0
 * after a signal, 1 when leadership was lost (the pod restarts and campaigns again, like
 * controller-runtime).
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import { migrate } from '../adapters/postgres/migrate.js';
import { createPgPool } from '../adapters/postgres/pool.js';
import { flagsUsage, parseOperatorFlags } from '../operator/flags.js';
import { postgresInventory } from '../operator/inventory-port.js';
import { operatorKubeConfig } from '../operator/kubeconfig.js';
import { startOperator, type OperatorSettings } from '../operator/operator.js';
import { startProbeServer } from '../engine/http.js';
import type { Command } from './commands.js';
import { listening } from './listen.js';
import { untilSignal } from './signals.js';

const POD_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The namespace this pod runs in (for the Lease), or `default` outside a cluster. */
function podNamespace(): string {
  return existsSync(POD_NAMESPACE_FILE) ? readFileSync(POD_NAMESPACE_FILE, 'utf8').trim() || 'default' : 'default';
}

export const operatorCommand: Command = {
  summary: 'reconcile TicketEvent resources into inventory, engine Deployments and status (leader-elected)',
  async run({ config, log, argv, stdout }) {
    const flags = parseOperatorFlags(argv, {
      identity: `${hostname()}-${process.pid}`,
      leaseNamespace: podNamespace(),
      watchNamespace: config.watchNamespace,
      httpPort: config.httpPort,
    });
    if (flags.help) {
      stdout.write(flagsUsage());
      return 0;
    }
    const kubeConfig = operatorKubeConfig(flags.kubeconfig);
    const pool = createPgPool({ url: config.databaseUrl, max: Math.min(config.pgPoolSize, 5), log, applicationName: 'sentinel-operator' });
    try {
      if (flags.migrate) await migrateAlive(flags.settings.http, () => migrate(pool, log));
      const operator = await listening(
        startOperator({ kubeConfig, inventory: postgresInventory(pool), log, settings: flags.settings }),
        PROBE_SERVER,
        probeSetting(flags.settings.http),
      );
      const exit = await Promise.race([untilSignal(config).then((cue) => ({ cue })), operator.done.then((reason) => ({ reason }))]);
      if ('cue' in exit) {
        log.info({ cue: exit.cue }, 'Operator stopping');
        await operator.stop();
        return 0;
      }
      log.error({ reason: exit.reason }, 'Operator exiting');
      return exit.reason === 'lost-leadership' ? 1 : 0;
    } finally {
      await pool.end();
    }
  },
};

/** The operator's health and metrics server, in messages. */
const PROBE_SERVER = "the operator's health and metrics server";

/** What sets the address of the operator's probe server, for a message that it cannot listen there. */
function probeSetting(http: OperatorSettings['http']): string {
  return http?.host === undefined ? 'SENTINEL_HTTP_PORT' : '--http-host and SENTINEL_HTTP_PORT';
}

/**
 * Runs `migration` while the probe port answers: alive (/healthz), not ready (/readyz). A migration
 * may take minutes — an index built on a large table, a wait for another replica's migration —
 * and a silent port would have the kubelet restart the container midway, over and over.
 */
export async function migrateAlive(http: OperatorSettings['http'], migration: () => Promise<unknown>): Promise<void> {
  const server =
    http === undefined
      ? undefined
      : await listening(
          startProbeServer({
            port: http.port,
            ...(http.host === undefined ? {} : { host: http.host }),
            registry: new Registry(),
            ready: () => false,
          }),
          PROBE_SERVER,
          probeSetting(http),
        );
  try {
    await migration();
  } finally {
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  }
}
