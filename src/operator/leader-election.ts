/**
 * Leader election through a `coordination.k8s.io/v1` Lease, with client-go's rules: the holder
 * renews every `retryPeriod`; a candidate takes the Lease only when the holder has not renewed for
 * `leaseDuration` as measured on the candidate's own clock (from when it last saw the record
 * change, so clock skew between nodes does not matter; and on a monotonic clock, so a step of the
 * wall clock, an NTP correction say, neither hands a live leader's Lease to a candidate nor keeps a
 * leader that cannot renew leading: only the Lease's timestamps are wall-clock); every write is
 * guarded by the Lease's resourceVersion, so two candidates can never both win; a leader that
 * cannot renew within `renewDeadline` stops leading. On a clean shutdown the leader releases the
 * Lease so a standby takes over at once instead of waiting out the lease — and so does a leader
 * whose term was lost, once its work has stopped.
 */
import { k8s } from '../adapters/kubernetes/client.js';
import type { Logger } from '../log.js';
import { isConflict, isNotFound, statusCodeOf } from './kube-errors.js';
import { withDeadline } from '../deadline.js';

/** Timing and identity of one candidate. */
export interface LeaderElectionConfig {
  readonly leaseName: string;
  readonly leaseNamespace: string;
  /** Unique per process, e.g. the pod name. */
  readonly identity: string;
  /** How long a lease is valid without renewal (client-go default 15 s). */
  readonly leaseDurationMs: number;
  /** How long the leader keeps trying to renew before it gives up leading (default 10 s). */
  readonly renewDeadlineMs: number;
  /** How often candidates try to acquire and the leader renews (default 2 s). */
  readonly retryPeriodMs: number;
}

/**
 * The clocks of an elector. Every duration it judges (a Lease's expiry, the renew deadline) is
 * measured on the monotonic one, which never steps; the wall clock only stamps the Lease's
 * acquireTime and renewTime, which Kubernetes defines as timestamps (and no candidate trusts).
 */
export interface ElectionClock {
  /** Milliseconds on a clock that only moves forward at a steady rate (performance.now()). */
  monotonicMs(): number;
  /** The time of day, for the Lease's timestamps. */
  wall(): Date;
}

export const SYSTEM_CLOCK: ElectionClock = { monotonicMs: () => performance.now(), wall: () => new Date() };

/** Callbacks of a leadership term. */
export interface LeaderCallbacks {
  /** Called once this candidate leads; the signal aborts when leadership ends. */
  onStartedLeading(signal: AbortSignal): void;
  /** Called once when a term ends (lost, or released on stop). */
  onStoppedLeading(reason: 'lost' | 'released'): void;
  /** Called whenever a (possibly new) leader is observed. */
  onNewLeader?(identity: string): void;
}

interface Observed {
  readonly holder: string;
  readonly resourceVersion: string;
  readonly renewTime: string;
  /** When this record was first seen, on the local monotonic clock. */
  readonly seenAt: number;
}

export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private readonly config: LeaderElectionConfig;
  private readonly callbacks: LeaderCallbacks;
  private readonly log: Logger;
  private observed: Observed | undefined;
  private leading = false;
  private term: AbortController | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** The last attempt to acquire or renew (it may outlive the wait for it: see `stop`). */
  private attempt: Promise<boolean> | undefined;
  private lost = false;
  private readonly clock: ElectionClock;

  constructor(
    kubeConfig: k8s.KubeConfig,
    config: LeaderElectionConfig,
    callbacks: LeaderCallbacks,
    log: Logger,
    options: { readonly clock?: ElectionClock } = {},
  ) {
    if (!(config.leaseDurationMs > config.renewDeadlineMs && config.renewDeadlineMs > config.retryPeriodMs)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod');
    }
    this.api = kubeConfig.makeApiClient(k8s.CoordinationV1Api);
    this.config = config;
    this.callbacks = callbacks;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.log = log.child({ lease: `${config.leaseNamespace}/${config.leaseName}` });
  }

  /** Whether this candidate leads right now. */
  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop = this.run();
  }

  /**
   * Stops campaigning; a leader releases the Lease (after the caller has stopped its work). So does
   * one whose term was lost, when `releaseAfterLoss` says its work has stopped: a renewal given up
   * on may still have landed and stamped the Lease as renewed — a standby would wait a whole lease
   * duration from then — and one that did not land leaves the Lease to expire; released, the standby
   * takes over at once. The release waits (within the renew deadline) for that last renewal to end,
   * so that it cannot land after the release; the release itself is given the renew deadline too —
   * a term is lost mostly because the API server cannot be reached, and a replica that lost it
   * must exit, not hang on a request that never ends.
   */
  async stop(options: { releaseAfterLoss?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    if (this.leading) {
      await this.release();
      this.endTerm('released');
    } else if (this.lost && options.releaseAfterLoss === true) {
      await withDeadline(this.attempt ?? Promise.resolve(false), this.config.renewDeadlineMs).catch(() => false);
      await withDeadline(this.release(), this.config.renewDeadlineMs).catch(() =>
        this.log.warn('Could not release the lost lease in time; a standby takes over when it expires'),
      );
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      // Campaign.
      while (!this.stopped && !(await this.tryAcquireOrRenew())) await this.sleep(jitter(this.config.retryPeriodMs));
      if (this.stopped) return;
      this.leading = true;
      this.term = new AbortController();
      this.log.info('Became leader');
      this.callbacks.onStartedLeading(this.term.signal);
      // Renew until stopped or the renew deadline passes.
      let lastRenew = this.clock.monotonicMs();
      while (!this.stopped) {
        await this.sleep(this.config.retryPeriodMs);
        if (this.stopped) return;
        if (await this.renewedWithin(this.config.renewDeadlineMs - (this.clock.monotonicMs() - lastRenew))) {
          lastRenew = this.clock.monotonicMs();
        } else if (this.clock.monotonicMs() - lastRenew >= this.config.renewDeadlineMs) {
          this.log.error({ renewDeadlineMs: this.config.renewDeadlineMs }, 'Lost leadership: could not renew the lease in time');
          this.lost = true;
          this.endTerm('lost');
          // And no new campaign: a replica that lost its term stops and exits (its work may still
          // be winding down). Were it to win the Lease back meanwhile — nobody else took it yet —
          // it would hold it while doing nothing, and keep the standby from taking over.
          this.stopped = true;
          return;
        }
      }
    }
  }

  private endTerm(reason: 'lost' | 'released'): void {
    if (!this.leading) return;
    this.leading = false;
    this.term?.abort();
    this.callbacks.onStoppedLeading(reason);
  }

  /**
   * One renewal attempt, false unless it succeeds within `ms`: a hung request must not keep a
   * leader leading. An attempt whose read of the Lease answers after `ms` writes nothing.
   */
  private async renewedWithin(ms: number): Promise<boolean> {
    if (ms <= 0) return false;
    return withDeadline(this.tryAcquireOrRenew(this.clock.monotonicMs() + ms), ms).catch(() => false);
  }

  /** One attempt; true when this candidate holds the Lease afterwards. Writes nothing once `writeBy` (monotonic ms) has passed. */
  private tryAcquireOrRenew(writeBy = Number.POSITIVE_INFINITY): Promise<boolean> {
    this.attempt = this.acquireOrRenew(writeBy);
    return this.attempt;
  }

  private async acquireOrRenew(writeBy: number): Promise<boolean> {
    const { leaseName: name, leaseNamespace: namespace, identity } = this.config;
    const now = new k8s.V1MicroTime(this.clock.wall().getTime());
    const durationSeconds = Math.ceil(this.config.leaseDurationMs / 1000);
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (!isNotFound(error)) {
        this.log.warn({ err: error, status: statusCodeOf(error) }, 'Could not read the lease');
        return false;
      }
      if (this.clock.monotonicMs() >= writeBy) return false;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        this.noteLeader(identity);
        return true;
      } catch (createError) {
        if (!isConflict(createError)) this.log.warn({ err: createError }, 'Could not create the lease');
        return false;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewTime = String(spec.renewTime ?? '');
    const resourceVersion = lease.metadata?.resourceVersion ?? '';
    if (this.observed === undefined || this.observed.resourceVersion !== resourceVersion) {
      this.observed = { holder, resourceVersion, renewTime, seenAt: this.clock.monotonicMs() };
    }
    const leaseMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    // Expired only after a whole lease duration without a change of the record, on this candidate's
    // monotonic clock: the renewTime written in it is another node's wall clock, and ours may step.
    if (holder !== '' && holder !== identity && this.clock.monotonicMs() < this.observed.seenAt + leaseMs) {
      this.noteLeader(holder);
      return false;
    }
    if (this.clock.monotonicMs() >= writeBy) return false;
    const taking = holder !== identity;
    const body: k8s.V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        acquireTime: taking ? now : spec.acquireTime,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (taking ? 1 : 0),
      },
    };
    try {
      const updated = await this.api.replaceNamespacedLease({ name, namespace, body });
      this.observed = {
        holder: identity,
        resourceVersion: updated.metadata?.resourceVersion ?? '',
        renewTime: now.toISOString(),
        seenAt: this.clock.monotonicMs(),
      };
      if (taking) this.log.info({ previousHolder: holder || undefined }, 'Acquired the lease');
      this.noteLeader(identity);
      return true;
    } catch (error) {
      if (!isConflict(error)) this.log.warn({ err: error }, 'Could not update the lease');
      return false;
    }
  }

  /** Gives the Lease up so that a standby need not wait out `leaseDuration`. */
  private async release(): Promise<void> {
    const { leaseName: name, leaseNamespace: namespace, identity } = this.config;
    try {
      const lease = await this.api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = new k8s.V1MicroTime(this.clock.wall().getTime());
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } },
      });
      this.log.info('Released the lease');
    } catch (error) {
      this.log.warn({ err: error }, 'Could not release the lease; a standby takes over when it expires');
    }
  }

  private lastLeader: string | undefined;
  private noteLeader(identity: string): void {
    if (identity === this.lastLeader) return;
    this.lastLeader = identity;
    if (identity !== this.config.identity) this.log.info({ leader: identity }, 'Observed leader');
    this.callbacks.onNewLeader?.(identity);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function jitter(ms: number): number {
  return ms + Math.floor(Math.random() * ms * 0.2);
}
