/**
 * Readiness: can this replica serve? Redis, NATS and Postgres must answer within a short timeout,
 * and the process must not be shutting down. Results are reused for a second, so a probe storm
 * does not become a dependency storm.
 *
 * `/readyz` needs no token, so a report names each check's outcome only in generic words (`ok`,
 * `failed: timed out`, `failed: error`); the dependency's own message — hosts, ports, a database's
 * authentication text — goes to the log.
 */
import type { NatsConnection } from 'nats';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { withDeadline } from '../deadline.js';
import type { Logger } from '../log.js';

/** What a report says of one check: nothing more specific, whoever asks. */
export type CheckStatus = 'ok' | 'failed: timed out' | 'failed: error' | 'shutting down';

/** One dependency check: resolves when the dependency answered. */
export type DependencyCheck = () => Promise<void>;

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, CheckStatus>>;
}

/** How long a probe may wait for one dependency (ms). */
export const READINESS_TIMEOUT_MS = 1000;
/** How long a report is reused (ms). */
export const READINESS_CACHE_MS = 1000;

/** The standard checks of the ingress's three dependencies. */
export function dependencyChecks(deps: { redis: Redis; nc: NatsConnection; pg: pg.Pool }): Record<string, DependencyCheck> {
  return {
    redis: async () => {
      await deps.redis.ping();
    },
    nats: async () => {
      if (deps.nc.isClosed()) throw new Error('connection closed');
      await deps.nc.flush();
    },
    postgres: async () => {
      await deps.pg.query('SELECT 1');
    },
  };
}

export class Readiness {
  private cached: { at: number; report: Promise<ReadinessReport> } | undefined;
  private shuttingDown = false;

  constructor(
    private readonly checks: Record<string, DependencyCheck>,
    private readonly now: () => number = Date.now,
    private readonly log?: Logger,
  ) {}

  /** From now on the replica reports not ready, so load balancers stop sending to it. */
  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  async report(): Promise<ReadinessReport> {
    if (this.shuttingDown) return { ready: false, checks: { process: 'shutting down' } };
    const now = this.now();
    if (this.cached === undefined || now - this.cached.at >= READINESS_CACHE_MS) this.cached = { at: now, report: this.probe() };
    return this.cached.report;
  }

  private async probe(): Promise<ReadinessReport> {
    const entries = await Promise.all(
      Object.entries(this.checks).map(async ([name, check]): Promise<[string, CheckStatus]> => {
        let answered = false;
        try {
          await withDeadline(
            check().finally(() => (answered = true)),
            READINESS_TIMEOUT_MS,
          );
          return [name, 'ok'];
        } catch (error) {
          this.log?.warn({ check: name, err: error instanceof Error ? error.message : String(error) }, 'Readiness check failed');
          return [name, answered ? 'failed: error' : 'failed: timed out'];
        }
      }),
    );
    return { ready: entries.every(([, status]) => status === 'ok'), checks: Object.fromEntries(entries) };
  }
}
