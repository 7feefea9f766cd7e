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
 * The checks are also made by each process on a timer (`watch`, every 5 s), /readyz asked or not,
 * so the gauge follows the dependencies in every worker of `--workers N`; the timer and /readyz
 * share the one cached probe, so they never both check.
 *
 * Liveness (`health`, at `/healthz`) is this process's own state: a client that is broken for good
 * — closed, it will not reconnect by itself; a NATS connection nats.js gave up on, say — fails it,
 * so the container is restarted; a dependency that does not answer does not (a restart would not
 * mend it). While shutting down the process closes its connections itself: liveness holds.
 *
 * `/readyz` and `/healthz` need no token, so a report names each check's outcome only in generic
 * words (`ok`, `failed: timed out`, `failed: error`, `failed: closed`); the dependency's own
 * message — hosts, ports, a database's authentication text — goes to the log.
 */
import type { NatsConnection } from 'nats';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { withDeadline } from '../deadline.js';
import type { Logger } from '../log.js';

/** What a report says of one check: nothing more specific, whoever asks. */
export type CheckStatus = 'ok' | 'failed: timed out' | 'failed: error' | 'shutting down';

/** What a health report says of a part broken for good. */
export type BrokenStatus = 'failed: closed';

/** One dependency check: resolves when the dependency answered. */
export type DependencyCheck = () => Promise<void>;

/**
 * One check of this process's own state, made at every `/healthz`: false when a part is broken for
 * good — it will not recover by itself, only a restart mends it. Synchronous and cheap: it reads a
 * client's state, it makes no network call.
 */
export type LivenessCheck = () => boolean;

export interface ReadinessReport {
  /** False only while shutting down. */
  readonly ready: boolean;
  /** Whether every dependency answered. */
  readonly dependenciesOk: boolean;
  readonly checks: Readonly<Record<string, CheckStatus>>;
}

export interface HealthReport {
  /** False when a part is broken for good; never while shutting down (the process closes its connections itself then). */
  readonly alive: boolean;
  readonly shuttingDown: boolean;
  /** The parts broken for good (none when alive). */
  readonly failed: Readonly<Record<string, BrokenStatus>>;
}

/** How long a probe may wait for one dependency (ms). */
export const READINESS_TIMEOUT_MS = 1000;
/** How long a report is reused (ms). */
export const READINESS_CACHE_MS = 1000;
/** How often each process checks its dependencies by itself (`watch`; ms). */
export const DEPENDENCY_CHECK_INTERVAL_MS = 5000;

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

/** The standard liveness checks: each client of the three is not closed for good. */
export function livenessChecks(deps: { redis: Redis; nc: NatsConnection; pg: pg.Pool }): Record<string, LivenessCheck> {
  return {
    // nats.js closes a connection for good when it gives up: on the same authentication error twice
    // in a row (connectNats retries forever otherwise), or when its reconnect attempts are spent.
    nats: () => !deps.nc.isClosed(),
    // ioredis ends a client only when told to (quit, disconnect) or when its retry strategy gives up
    // (createRedis's never does): ended, it never reconnects.
    redis: () => deps.redis.status !== 'end',
    // A pool told to end refuses every query from then on.
    postgres: () => !deps.pg.ending,
  };
}

export interface ReadinessOptions {
  /** The dependency checks of readiness (and of `sentinel_ingress_dependency_up`). */
  readonly checks: Record<string, DependencyCheck>;
  /** The checks of liveness; none by default. */
  readonly liveness?: Record<string, LivenessCheck>;
  readonly now?: () => number;
  readonly log?: Logger;
  /** Told each dependency check's outcome as it is made. */
  readonly checked?: (dependency: string, ok: boolean) => void;
}

export class Readiness {
  private cached: { at: number; settled: boolean; report: Promise<ReadinessReport> } | undefined;
  private shuttingDown = false;
  private timer: NodeJS.Timeout | undefined;
  /** The parts already logged as broken for good (logged once each). */
  private readonly reportedBroken = new Set<string>();
  private readonly checks: Record<string, DependencyCheck>;
  private readonly liveness: Record<string, LivenessCheck>;
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private readonly checked: (dependency: string, ok: boolean) => void;

  constructor(options: ReadinessOptions) {
    this.checks = options.checks;
    this.liveness = options.liveness ?? {};
    this.now = options.now ?? Date.now;
    this.log = options.log;
    this.checked = options.checked ?? (() => undefined);
  }

  /**
   * From now on the replica reports not ready, so load balancers stop sending to it; the timer of
   * `watch` stops; and liveness no longer looks at the connections, which the process closes itself.
   */
  markShuttingDown(): void {
    this.shuttingDown = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Checks the dependencies now and every `intervalMs` until shutting down, whether or not anyone
   * asks /readyz, so `checked` (the gauge) follows them. The timer keeps no process alive, and each
   * tick takes `report`'s cached probe when it is fresh or still running: the timer and /readyz
   * never both check. A second call does nothing.
   */
  watch(intervalMs: number = DEPENDENCY_CHECK_INTERVAL_MS): void {
    if (this.shuttingDown || this.timer !== undefined) return;
    const tick = () => void this.report().catch(() => undefined);
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
    tick();
  }

  /** Whether the timer of `watch` runs. */
  get watching(): boolean {
    return this.timer !== undefined;
  }

  async report(): Promise<ReadinessReport> {
    if (this.shuttingDown) return { ready: false, dependenciesOk: false, checks: { process: 'shutting down' } };
    const now = this.now();
    const cached = this.cached;
    if (cached === undefined || (cached.settled && now - cached.at >= READINESS_CACHE_MS)) {
      const probe = { at: now, settled: false, report: this.probe() };
      void probe.report.finally(() => (probe.settled = true)).catch(() => undefined);
      this.cached = probe;
      return probe.report;
    }
    return cached.report;
  }

  /** Liveness: no network call, only the clients' states. */
  health(): HealthReport {
    if (this.shuttingDown) return { alive: true, shuttingDown: true, failed: {} };
    const failed: Record<string, BrokenStatus> = {};
    for (const [name, alive] of Object.entries(this.liveness)) {
      if (alive()) continue;
      failed[name] = 'failed: closed';
      if (!this.reportedBroken.has(name)) {
        this.reportedBroken.add(name);
        this.log?.error({ check: name }, 'Connection closed for good: /healthz fails, so that the process is restarted');
      }
    }
    return { alive: Object.keys(failed).length === 0, shuttingDown: false, failed };
  }

  /**
   * Resolves once `health` finds a part broken for good (looked at every `intervalMs`, not while
   * shutting down); `stop` ends the looking. The ingress process stops itself then, to be started
   * again (see ingress-command).
   */
  untilBroken(intervalMs: number): { readonly broken: Promise<HealthReport>; stop(): void } {
    let timer: NodeJS.Timeout | undefined;
    const broken = new Promise<HealthReport>((resolve) => {
      timer = setInterval(() => {
        const health = this.health();
        if (!health.alive) resolve(health);
      }, intervalMs);
      timer.unref();
    });
    return { broken, stop: () => clearInterval(timer) };
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
