/**
 * A chaos run: a stress load, a schedule of faults injected while it runs, recovery, then
 * `verify`. Locally the run owns the engine and ingress processes (LocalStack) and restarts
 * dependencies through `hack/infra.sh`; attached to a cluster, faults come from elsewhere (Chaos
 * Mesh, LitmusChaos) and the run only loads, observes and verifies.
 *
 * Each fault's report says when it happened, what it did, and what it cost: how long until the
 * shards of a killed or paused engine were owned again (from the fencing epochs in Postgres), how
 * long a restart took, and the failed requests and disruption seen by clients until the next fault.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type pg from 'pg';
import { errorLine } from '../../errors.js';
import type { LocalStack, ManagedProcess } from '../local-stack.js';
import { SLOT_MS, type Slot } from '../stress/stats.js';
import { StressRun, type StressOptions, type StressReport } from '../stress/stress.js';
import { EXIT, verifyEvent, type VerifyOptions, type VerifyReport } from '../verify/verify.js';
import { SERVICE_OF, type PlannedFault } from './schedule.js';

const run = promisify(execFile);

export interface ChaosOptions {
  readonly eventId: string;
  readonly pool: pg.Pool;
  /** The processes this run manages; undefined when attached to a system running elsewhere. */
  readonly stack: LocalStack | undefined;
  /** Environment of replacement engines (a Deployment would start one after a kill). */
  readonly engineEnv: Record<string, string>;
  readonly stress: StressOptions & { readonly logPath: string };
  readonly schedule: readonly PlannedFault[];
  /** `hack/infra.sh`, for dependency restarts. */
  readonly infraScript: string;
  /** How long to wait after the load for every shard to be owned by a live engine, ms. */
  readonly recoveryTimeoutMs: number;
  readonly verify: Omit<VerifyOptions, 'eventId' | 'pool' | 'logs'>;
  /** Each fault as it completes. */
  readonly onFault?: (fault: FaultResult) => void;
  readonly onStatus?: (message: string) => void;
  readonly signal?: AbortSignal;
}

/** What clients saw from a fault until the next one. */
export interface FaultEffect {
  readonly ok: number;
  readonly refused: number;
  readonly throttled: number;
  /** 5xx answers and attempts without an answer. */
  readonly failed: number;
  /** From the fault to the end of the last slot with a failure in its window, s (0: nobody noticed). */
  readonly disruption_s: number;
}

export interface FaultResult {
  readonly kind: PlannedFault['kind'];
  readonly planned_at_s: number;
  /** When it was injected, s after the load started. */
  readonly at_s: number;
  readonly target: string;
  /** What was done and what followed, in words. */
  readonly detail: string;
  /** Time until the system was whole again (shards re-owned, service back), s, when measured. */
  readonly recovered_s: number | null;
  /** Why the fault did not go as planned (not injected; a restart that failed), or null; `detail` says what happened. */
  readonly error: string | null;
  effect: FaultEffect;
}

/** A planned fault that never ran, and why. */
export interface SkippedFault {
  readonly kind: PlannedFault['kind'];
  readonly planned_at_s: number;
  readonly reason: string;
}

export interface ChaosReport {
  /**
   * Verify passed and the experiment was made as planned: every planned fault injected, and every
   * shard owned by a live engine again after the load. A fault that did not run, or a system that
   * did not recover, is not a pass — verify alone cannot see either (see `unmet`).
   */
  readonly ok: boolean;
  readonly event: string;
  readonly faults: readonly FaultResult[];
  /** Planned faults that never ran (the load ended or was stopped first). */
  readonly skipped: readonly SkippedFault[];
  /**
   * Why the run is not a pass apart from verify's violations, in words (empty when it is, or when
   * only verify failed): among them a load that failed, or a verification that could not be made.
   */
  readonly unmet: readonly string[];
  /** The load's report; null when the load failed after it began (see `unmet`): the faults' effects were not measured then. */
  readonly stress: Omit<StressReport, 'timeline'> | null;
  /** Periods in which clients saw failures (5xx, no answer), from the load's timeline: with
   * --attach, set them against the external tool's experiments. */
  readonly disruptions: readonly Disruption[];
  /** After the load: seconds until every shard was owned by a live engine (null: not within the timeout). */
  readonly recovery_s: number | null;
  /** null: the verification could not be made (an error stopped it — Postgres unreachable, say; see `unmet`). */
  readonly verify: VerifyReport | null;
}

/**
 * A chaos run's exit code: 0 a pass; 1 a violation (whatever else); 3 not judged — a check not
 * made, a fault not made as planned, no recovery, a load that failed, a verification not made.
 */
export function chaosExitCode(report: ChaosReport): number {
  if (report.ok) return EXIT.ok;
  return report.verify !== null && report.verify.counts.violations > 0 ? EXIT.violations : EXIT.notChecked;
}

interface ShardState {
  readonly epoch: number;
  readonly owner: string | null;
}

async function shardStates(pool: pg.Pool, eventId: string): Promise<Map<number, ShardState>> {
  const { rows } = await pool.query<{ shard: number; epoch: string; owner: string | null }>(
    'SELECT shard, epoch, owner FROM shards WHERE event_id = $1',
    [eventId],
  );
  return new Map(rows.map((r) => [r.shard, { epoch: Number(r.epoch), owner: r.owner }]));
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** Why a chaos run is not a pass whatever verify says: faults not made as planned, or a system that did not recover. Pure. */
export function unmetOf(faults: readonly FaultResult[], skipped: readonly SkippedFault[], recoveryS: number | null): string[] {
  const unmet: string[] = [];
  const failed = faults.filter((f) => f.error !== null);
  if (failed.length > 0)
    unmet.push(`${failed.length} fault(s) did not go as planned: ${failed.map((f) => `${f.kind} (${f.error})`).join(', ')}`);
  if (skipped.length > 0) {
    unmet.push(
      `${skipped.length} planned fault(s) never ran: ${skipped.map((f) => `${f.kind} at ${f.planned_at_s} s (${f.reason})`).join(', ')}`,
    );
  }
  if (recoveryS === null) unmet.push('after the load, not every shard was owned by a live engine within the timeout');
  return unmet;
}

/** When each shard of a stopped engine was claimed by another engine (a newer epoch, another owner). */
export class Takeover {
  private readonly movedAt = new Map<number, number>();

  constructor(
    private readonly shards: readonly number[],
    private readonly victim: string,
    private readonly before: ReadonlyMap<number, ShardState>,
    private readonly at: number,
  ) {}

  observe(now: ReadonlyMap<number, ShardState>, time: number): void {
    for (const shard of this.shards) {
      if (this.movedAt.has(shard)) continue;
      const s = now.get(shard);
      if (s !== undefined && s.epoch > (this.before.get(shard)?.epoch ?? 0) && s.owner !== null && s.owner !== this.victim) {
        this.movedAt.set(shard, time - this.at);
      }
    }
  }

  get complete(): boolean {
    return this.movedAt.size === this.shards.length;
  }

  /** How many of the victim's shards have moved so far. */
  get moved(): number {
    return this.movedAt.size;
  }

  /** How many shards the victim owned when the fault began. */
  get owned(): number {
    return this.shards.length;
  }

  /** How many of the victim's shards were seen moved within `ms` of the fault. */
  movedWithin(ms: number): number {
    return [...this.movedAt.values()].filter((t) => t <= ms).length;
  }

  /** ms until the last shard moved, or null while some have not. */
  allDoneMs(): number | null {
    return this.complete ? Math.max(0, ...this.movedAt.values()) : null;
  }

  /** "4/4 shards re-owned …, the first after 3.1 s, the last after 3.7 s". */
  describe(what: string): string {
    if (this.shards.length === 0) return 'it owned no shards';
    const times = [...this.movedAt.values()].sort((a, b) => a - b);
    if (times.length === 0) return `none of its ${this.shards.length} shards was ${what}`;
    const span =
      times.length === 1
        ? `after ${seconds(times[0]!)} s`
        : `the first after ${seconds(times[0]!)} s, the last after ${seconds(times.at(-1)!)} s`;
    return `${times.length}/${this.shards.length} shards ${what}, ${span}`;
  }
}

/** What an engine logs when the epoch fence refused its commit (src/engine/shard-host.ts), with `event` and `shard`. */
export const FENCED_MESSAGE = 'Fenced: shard stopped';

/**
 * The shards of one event an engine's log says were fenced: a commit the epoch fence refused, so
 * the engine stopped serving the shard. Fed the engine's output (pino JSON lines) in chunks as
 * they arrive; a line split across chunks is joined. Other lines, other events, anything that is
 * not JSON are passed over.
 */
export class FencedShards {
  readonly shards = new Set<number>();
  private partial = '';

  constructor(private readonly eventId: string) {}

  write(chunk: Buffer | string): void {
    const lines = (this.partial + chunk.toString()).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes(FENCED_MESSAGE)) continue;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      const { msg, event, shard } = (entry ?? {}) as { msg?: unknown; event?: unknown; shard?: unknown };
      if (msg === FENCED_MESSAGE && event === this.eventId && typeof shard === 'number') this.shards.add(shard);
    }
  }
}

/** What was seen of an engine-pause, from SIGSTOP until the watch of its shards ended. */
export interface PauseObservation {
  readonly victim: string;
  readonly pauseMs: number;
  readonly takeover: Takeover;
  /** SIGCONT, ms after the fault began (the clock of `takeover`). */
  readonly resumedMs: number;
  /** How long it was watched after SIGCONT, ms. */
  readonly watchedMs: number;
  /** Why the watch ended before every shard moved (its deadline, the next fault); undefined when they all did. */
  readonly cutShort: string | undefined;
  /** How it ended, when it exited after SIGCONT (exit code or signal); null while it runs. */
  readonly exit: string | null;
  /** Shards whose commits it logged as refused by the epoch fence after SIGCONT. */
  readonly fencedShards: number;
}

/**
 * An engine-pause's detail, in words. Only what was observed is stated as fact: takeovers (new
 * epochs in Postgres), refused commits (the engine's own "Fenced" lines); the fence that would
 * refuse a commit nobody saw is stated as what the design guarantees. Pure.
 */
export function describePause(p: PauseObservation): string {
  const t = p.takeover;
  const head = `SIGSTOP ${p.victim} owning ${t.owned} shard(s) for ${seconds(p.pauseMs)} s, then SIGCONT`;
  const watched = `watched ${seconds(p.watchedMs)} s after SIGCONT${p.cutShort === undefined ? '' : `, until ${p.cutShort}`}`;
  if (t.owned === 0) {
    const after = p.exit === null ? 'it kept running' : `it exited (${p.exit})`;
    return `${head}; it owned no shards, so none could be taken over; after SIGCONT ${after} (${watched})`;
  }
  const stopped = t.movedWithin(p.resumedMs);
  const moved =
    t.moved === 0
      ? `none of its ${t.owned} shards was taken over`
      : `${t.describe('taken over (epoch bumped)')}: ${stopped} while it was stopped, ${t.moved - stopped} after SIGCONT`;
  let after: string;
  if (p.exit !== null) after = `it exited (${p.exit})`;
  else if (p.fencedShards > 0)
    after = `it kept running, and the epoch fence refused its commits on ${p.fencedShards} shard(s) (it logged "${FENCED_MESSAGE}")`;
  else if (t.moved > 0)
    after =
      `it kept running; no commit of it was refused while watched (it logged no "${FENCED_MESSAGE}") — ` +
      'by design the epoch fence refuses its commits on the shards taken over';
  else after = 'it kept running with its shards (a pause shorter than its leases keeps them)';
  return `${head}; ${moved}; after SIGCONT ${after} (${watched})`;
}

/** How long a resumed engine is watched at least: its first commits after SIGCONT, refused or not, come within this (ms). */
const AFTER_RESUME_MS = 1000;

/** An outcome of a fault, in the report's terms. */
interface Outcome {
  readonly target: string;
  readonly detail: string;
  readonly recovered_s: number | null;
  /** It was made, but not as planned (see FaultResult.error). */
  readonly error?: string;
}

/** Longest a `hack/infra.sh restart` may take, ms. */
const RESTART_TIMEOUT_MS = 180_000;
/** After a failed restart: how many times `hack/infra.sh start` is tried, each for at most START_TIMEOUT_MS, START_RETRY_DELAY_MS apart. */
const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 120_000;
const START_RETRY_DELAY_MS = 1000;

/** Why `hack/infra.sh` failed, in one line: killed by its timeout, or the last line it wrote to stderr. */
function scriptFailure(error: unknown): string {
  const e = error as { killed?: boolean; signal?: string | null; stderr?: unknown };
  if (e.killed === true) return `killed by its timeout${e.signal ? ` (${e.signal})` : ''}`;
  const last = String(e.stderr ?? '')
    .trim()
    .split('\n')
    .at(-1);
  if (last) return last;
  return error instanceof Error ? (error.message.split('\n')[0] ?? error.message) : String(error);
}

export class ChaosRun {
  private startedAt = 0;
  private loadDone = false;
  private readonly pending: Promise<unknown>[] = [];
  /** Fires when the run is stopped or the load is over: the schedule waits for nothing more then. */
  private readonly ended = new AbortController();

  constructor(private readonly options: ChaosOptions) {
    const end = () => this.ended.abort();
    if (options.signal?.aborted) end();
    else options.signal?.addEventListener('abort', end, { once: true });
  }

  async run(): Promise<ChaosReport> {
    const o = this.options;
    let started!: () => void;
    const clockStarted = new Promise<void>((resolve) => (started = resolve));
    const stress = new StressRun({
      ...o.stress,
      onStart: (at) => {
        this.startedAt = at;
        o.stress.onStart?.(at);
        started();
      },
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const load = stress.run().finally(() => {
      this.loadDone = true;
      this.ended.abort();
    });
    // The faults follow the load's clock; a load stopped before its clock started (a Ctrl-C during
    // set-up) has none, and every fault is then skipped at once. A load that fails does not cut the
    // schedule short of its report: the faults made so far are waited for, and reported.
    const faults = Promise.race([clockStarted, load])
      .catch(() => undefined)
      .then(() => this.runSchedule());
    const [loaded, scheduled] = await Promise.allSettled([load, faults]);
    await Promise.all(this.pending);
    // A load that failed before its clock started (discovery: an unknown event, a refused token) ran
    // nothing and made no fault: the caller says why.
    if (loaded.status === 'rejected' && this.startedAt === 0) throw loaded.reason;
    if (scheduled.status === 'rejected') throw scheduled.reason;
    const { results, skipped } = scheduled.value;
    const report = loaded.status === 'fulfilled' ? loaded.value : undefined;
    const unmet: string[] = [];
    if (loaded.status === 'rejected')
      unmet.push(`the load failed, so what clients saw of each fault was not measured: ${errorLine(loaded.reason)}`);
    else for (const fault of results) fault.effect = effectOf(loaded.value.timeline, fault, results);

    o.onStatus?.('waiting for every shard to be owned by a live engine');
    const recovery = await this.waitRecovered();
    o.onStatus?.('verifying');
    // An error that stops the verification (Postgres down after a restart that failed, say) leaves
    // the run not judged — and the faults made are reported all the same.
    let verify: VerifyReport | null = null;
    try {
      verify = await verifyEvent({ ...o.verify, eventId: o.eventId, pool: o.pool, logs: [o.stress.logPath] });
    } catch (error) {
      unmet.push(`the verification could not be made: ${errorLine(error)}`);
    }
    unmet.unshift(...unmetOf(results, skipped, recovery));
    let stressReport: Omit<StressReport, 'timeline'> | null = null;
    if (report !== undefined) {
      const { timeline: _timeline, ...rest } = report;
      stressReport = rest;
    }
    return {
      ok: verify !== null && verify.ok && unmet.length === 0,
      event: o.eventId,
      faults: results,
      skipped,
      unmet,
      disruptions: report === undefined ? [] : disruptionsOf(report.timeline),
      stress: stressReport,
      recovery_s: recovery,
      verify,
    };
  }

  /**
   * Injects the faults one at a time. A fault still observed after it was made (an engine-pause:
   * takeovers can finish after SIGCONT) is reported when its observation ends — by itself, or when
   * the next fault is about to be injected, after which a shard that moves could be that fault's
   * doing (or the run is stopped) — and always before the next fault, so faults keep their order.
   */
  private async runSchedule(): Promise<{ results: FaultResult[]; skipped: SkippedFault[] }> {
    const results: FaultResult[] = [];
    const skipped: SkippedFault[] = [];
    const report = (result: FaultResult) => {
      results.push(result);
      this.options.onFault?.(result);
    };
    let observed: { readonly stop: AbortController; readonly reported: Promise<void> } | undefined;
    const onStop = () => observed?.stop.abort('the run was stopped');
    this.options.signal?.addEventListener('abort', onStop, { once: true });
    try {
      for (const planned of this.options.schedule) {
        const wait = this.startedAt + planned.atMs - Date.now();
        // Not past the run's stop or the load's end: the faults left are skipped then.
        if (wait > 0) await sleep(wait, undefined, { signal: this.ended.signal }).catch(() => undefined);
        const notRun = this.options.signal?.aborted ? 'the run was stopped first' : this.loadDone ? 'the load ended first' : undefined;
        if (notRun !== undefined) {
          skipped.push({ kind: planned.kind, planned_at_s: seconds(planned.atMs), reason: notRun });
          continue;
        }
        if (observed !== undefined) {
          observed.stop.abort('the next fault');
          await observed.reported;
          observed = undefined;
        }
        const stop = new AbortController();
        const made = await this.inject(planned, stop.signal);
        if ('later' in made) {
          observed = { stop, reported: made.later.then(report) };
          if (this.options.signal?.aborted) stop.abort('the run was stopped');
        } else report(made);
      }
      await observed?.reported;
    } finally {
      this.options.signal?.removeEventListener('abort', onStop);
    }
    return { results, skipped };
  }

  /** Makes one fault: its result, or (`later`) the result once what follows it has been observed too. */
  private async inject(planned: PlannedFault, until: AbortSignal): Promise<FaultResult | { readonly later: Promise<FaultResult> }> {
    const at = Date.now();
    const base = { kind: planned.kind, planned_at_s: seconds(planned.atMs), at_s: seconds(at - this.startedAt) };
    const empty: FaultEffect = { ok: 0, refused: 0, throttled: 0, failed: 0, disruption_s: 0 };
    try {
      const outcome = await this.execute(planned, at, until);
      if ('later' in outcome) return { later: outcome.later.then((o) => ({ ...base, ...o, error: o.error ?? null, effect: empty })) };
      return { ...base, ...outcome, error: outcome.error ?? null, effect: empty };
    } catch (error) {
      return {
        ...base,
        target: '',
        detail: 'the fault could not be injected',
        recovered_s: null,
        error: error instanceof Error ? error.message : String(error),
        effect: empty,
      };
    }
  }

  private async execute(planned: PlannedFault, at: number, until: AbortSignal): Promise<Outcome | { readonly later: Promise<Outcome> }> {
    const o = this.options;
    const service = SERVICE_OF[planned.kind];
    if (service !== undefined) return this.restartService(service, at);
    const stack = o.stack;
    if (stack === undefined) throw new Error(`${planned.kind} needs processes this run manages`);
    switch (planned.kind) {
      case 'engine-kill':
      case 'engine-pause': {
        const before = await shardStates(o.pool, o.eventId);
        const victim = this.pickEngine(stack, before);
        const owned = [...before].filter(([, s]) => s.owner === victim.name).map(([shard]) => shard);
        const takeover = new Takeover(owned, victim.name, before, at);
        const watching = this.watch(takeover, 30_000 + (planned.durationMs ?? 0), until);
        if (planned.kind === 'engine-kill') {
          await stack.kill(victim);
          // What the Deployment's ReplicaSet would do: a new pod.
          const replacement = stack.startEngine(o.eventId, o.engineEnv).then((p) => ({ name: p.name, readyS: seconds(Date.now() - at) }));
          this.pending.push(replacement.catch(() => undefined));
          await watching;
          const fresh = await replacement.catch((e: unknown) => ({ name: `replacement failed: ${String(e)}`, readyS: NaN }));
          return {
            target: `${victim.name} (pid ${victim.pid})`,
            detail: `SIGKILL ${victim.name} owning ${owned.length} shard(s); ${takeover.describe('re-owned by another engine')}; replacement ${fresh.name} ready after ${fresh.readyS} s`,
            recovered_s: takeover.allDoneMs() === null ? null : seconds(takeover.allDoneMs()!),
          };
        }
        const pauseMs = planned.durationMs ?? 7000;
        stack.signal(victim, 'SIGSTOP');
        await sleep(pauseMs);
        // Its output from SIGCONT on (a stopped process writes nothing): a commit the epoch fence
        // refused is logged there, and only a refusal seen there is reported as one.
        const fenced = new FencedShards(o.eventId);
        const onOutput = (chunk: Buffer) => fenced.write(chunk);
        victim.child.stdout?.on('data', onOutput);
        stack.signal(victim, 'SIGCONT');
        const resumedMs = Date.now() - at;
        const target = `${victim.name} (pid ${victim.pid})`;
        // Shards can be taken over after SIGCONT too (a lease that ran out while it was stopped, claimed
        // on the next rebalance): the result waits for the watch, and gives the engine at least
        // AFTER_RESUME_MS to show what it does. The watch ends by itself (every shard moved, or its
        // deadline), or when the next fault comes (runSchedule).
        const later = (async (): Promise<Outcome> => {
          try {
            const [ended] = await Promise.all([watching, sleep(AFTER_RESUME_MS, undefined, { signal: until }).catch(() => undefined)]);
            const done = victim.child.exitCode !== null || victim.child.signalCode !== null;
            return {
              target,
              detail: describePause({
                victim: victim.name,
                pauseMs,
                takeover,
                resumedMs,
                watchedMs: Date.now() - at - resumedMs,
                cutShort: ended === 'complete' ? undefined : ended,
                exit: done ? String(victim.child.exitCode ?? victim.child.signalCode) : null,
                fencedShards: fenced.shards.size,
              }),
              recovered_s: takeover.allDoneMs() === null ? null : seconds(takeover.allDoneMs()!),
            };
          } finally {
            victim.child.stdout?.off('data', onOutput);
          }
        })();
        return { later };
      }
      case 'ingress-restart':
      case 'ingress-kill': {
        const victim = stack.running('ingress')[0];
        if (victim === undefined) throw new Error('no ingress is running');
        const fresh = await stack.restartIngress(victim, planned.kind === 'ingress-kill' ? 'kill' : 'graceful');
        const took = Date.now() - at;
        return {
          target: `${victim.name} (pid ${victim.pid})`,
          detail: `${planned.kind === 'ingress-kill' ? 'SIGKILL' : 'SIGTERM (graceful)'} ${victim.name}; a new one (pid ${fresh.pid}) served the same port after ${seconds(took)} s`,
          recovered_s: seconds(took),
        };
      }
      default:
        throw new Error(`unknown fault ${planned.kind}`);
    }
  }

  /**
   * `hack/infra.sh restart <service>`: stop, then start. If it fails — or its timeout kills it —
   * between the two, the service is left stopped and nothing else would bring it back (Postgres
   * down: no verify): `hack/infra.sh start` is tried, a few times; the result says what happened.
   */
  private async restartService(service: string, at: number): Promise<Outcome> {
    const script = this.options.infraScript;
    try {
      await run('bash', [script, 'restart', service], { timeout: RESTART_TIMEOUT_MS });
      const took = Date.now() - at;
      return { target: service, detail: `hack/infra.sh restart ${service}: back in ${seconds(took)} s`, recovered_s: seconds(took) };
    } catch (error) {
      const failed = `hack/infra.sh restart ${service} failed after ${seconds(Date.now() - at)} s (${scriptFailure(error)}), so ${service} may have been stopped and not started again`;
      let last = '';
      for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
        if (attempt > 1) await sleep(START_RETRY_DELAY_MS);
        try {
          await run('bash', [script, 'start', service], { timeout: START_TIMEOUT_MS });
          const took = Date.now() - at;
          return {
            target: service,
            detail: `${failed}; hack/infra.sh start ${service} brought it back ${seconds(took)} s after the fault (attempt ${attempt})`,
            recovered_s: seconds(took),
            error: `the restart failed; ${service} was started again after ${seconds(took)} s`,
          };
        } catch (startError) {
          last = scriptFailure(startError);
        }
      }
      return {
        target: service,
        detail: `${failed}; hack/infra.sh start ${service} failed too, ${START_ATTEMPTS} times (last: ${last}): ${service} may be down`,
        recovered_s: null,
        error: `the restart failed, and ${service} could not be started again`,
      };
    }
  }

  /** The running, unpaused engine owning the most shards (the most damage), or the first one. */
  private pickEngine(stack: LocalStack, states: Map<number, ShardState>): ManagedProcess {
    const engines = stack.running('engine').filter((p) => !p.paused);
    if (engines.length === 0) throw new Error('no engine is running');
    const owned = (p: ManagedProcess) => [...states.values()].filter((s) => s.owner === p.name).length;
    return engines.reduce((best, p) => (owned(p) > owned(best) ? p : best));
  }

  /**
   * Polls shard ownership until every shard of `takeover` moved on ('complete'), `timeoutMs`
   * passed, or `until` was aborted; resolves with why it ended ('complete', or the abort's reason).
   */
  private async watch(takeover: Takeover, timeoutMs: number, until?: AbortSignal): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!takeover.complete && Date.now() < deadline && !until?.aborted) {
      try {
        takeover.observe(await shardStates(this.options.pool, this.options.eventId), Date.now());
      } catch {
        // Postgres may be restarting too; keep looking.
      }
      if (!takeover.complete) await sleep(100);
    }
    if (takeover.complete) return 'complete';
    return until?.aborted ? String(until.reason) : `its limit (${seconds(timeoutMs)} s after the fault)`;
  }

  /**
   * Seconds until every shard is owned by a live engine, or null: one of this run's engines, not
   * paused, holding the shard's lease (attached: any engine holding it — an engine killed without
   * handing off still names itself owner in Postgres).
   */
  private async waitRecovered(): Promise<number | null> {
    const o = this.options;
    const started = Date.now();
    while (Date.now() - started < o.recoveryTimeoutMs) {
      try {
        const states = await shardStates(o.pool, o.eventId);
        const leased = o.verify.leases ? await o.verify.leases(o.eventId, states.size) : undefined;
        const live = o.stack
          ? new Set(
              o.stack
                .running('engine')
                .filter((p) => !p.paused)
                .map((p) => p.name),
            )
          : undefined;
        const served = ([shard, s]: [number, ShardState]) =>
          s.owner !== null && (live === undefined || live.has(s.owner)) && (leased === undefined || leased.has(shard));
        if (states.size > 0 && [...states].every(served)) return seconds(Date.now() - started);
      } catch {
        // keep waiting
      }
      await sleep(250);
    }
    return null;
  }
}

/** Sums the timeline slots between a fault and the next one. */
export function effectOf(
  timeline: readonly Slot[],
  fault: Pick<FaultResult, 'at_s'>,
  all: readonly Pick<FaultResult, 'at_s'>[],
): FaultEffect {
  const next = all
    .map((f) => f.at_s)
    .filter((s) => s > fault.at_s)
    .sort((a, b) => a - b)[0];
  const from = Math.floor((fault.at_s * 1000) / SLOT_MS);
  const to = next === undefined ? timeline.length : Math.floor((next * 1000) / SLOT_MS);
  const effect = { ok: 0, refused: 0, throttled: 0, failed: 0, disruption_s: 0 };
  let lastFailed = -1;
  for (let i = Math.max(0, from); i < Math.min(to, timeline.length); i++) {
    const slot = timeline[i]!;
    effect.ok += slot.ok;
    effect.refused += slot.refused;
    effect.throttled += slot.throttled;
    effect.failed += slot.failed;
    if (slot.failed > 0) lastFailed = i;
  }
  if (lastFailed >= 0) effect.disruption_s = Math.max(0, Math.round(((lastFailed + 1) * SLOT_MS - fault.at_s * 1000) / 100) / 10);
  return effect;
}

/** A period in which clients saw failures. */
export interface Disruption {
  /** Seconds after the load started. */
  readonly from_s: number;
  readonly to_s: number;
  readonly failed: number;
}

/** Periods of slots with failures, merging gaps shorter than `gapMs`. */
export function disruptionsOf(timeline: readonly Slot[], gapMs = 1000): Disruption[] {
  const out: { from: number; to: number; failed: number }[] = [];
  const gapSlots = Math.max(1, Math.round(gapMs / SLOT_MS));
  timeline.forEach((slot, i) => {
    if (slot.failed === 0) return;
    const last = out.at(-1);
    if (last !== undefined && i - last.to <= gapSlots) {
      last.to = i;
      last.failed += slot.failed;
    } else out.push({ from: i, to: i, failed: slot.failed });
  });
  return out.map((d) => ({ from_s: (d.from * SLOT_MS) / 1000, to_s: ((d.to + 1) * SLOT_MS) / 1000, failed: d.failed }));
}
