/**
 * Readiness: should this replica get traffic? Yes unless it is shutting down. Redis, NATS and
 * Postgres are checked too (each within a short timeout; results reused for a second, so a probe
 * storm does not become a dependency storm), and reported — in the body, and as
 * `sentinel_ingress_dependency_up` — but they do not make the replica unready: they are shared by
 * every replica, so a dependency down would take every replica out of the Service at once, and
 * buyers would get the load balancer's bare refusal instead of this ingress's problem+json 503
 * with Retry-After — and, once it is back, wait out the probes' period before any replica got
 * traffic again (ADR 0004, Operations).
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
  /** False only while shutting down. */
  readonly ready: boolean;
  /** Whether every dependency answered. */
  readonly dependenciesOk: boolean;
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
    /** Told each check's outcome as it is made. */
    private readonly checked: (dependency: string, ok: boolean) => void = () => undefined,
  ) {}

  /** From now on the replica reports not ready, so load balancers stop sending to it. */
  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  async report(): Promise<ReadinessReport> {
    if (this.shuttingDown) return { ready: false, dependenciesOk: false, checks: { process: 'shutting down' } };
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
          this.checked(name, true);
          return [name, 'ok'];
        } catch (error) {
          this.log?.warn({ check: name, err: error instanceof Error ? error.message : String(error) }, 'Dependency check failed');
          this.checked(name, false);
          return [name, answered ? 'failed: error' : 'failed: timed out'];
        }
      }),
    );
    return { ready: true, dependenciesOk: entries.every(([, status]) => status === 'ok'), checks: Object.fromEntries(entries) };
  }
}
