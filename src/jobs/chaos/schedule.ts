/**
 * Fault schedules: which fault happens when during a chaos run. Written as
 * `5s:engine-kill,15s:engine-pause=7s,25s:redis-restart`, or generated (`default`) to spread
 * every kind of fault over the run. Pure, so schedules are tested without breaking anything.
 */
import { parseDurationMs, UsageError } from '../options.js';
import { isLoopbackHost } from '../targets.js';

export const FAULT_KINDS = [
  'engine-kill',
  'engine-pause',
  'redis-restart',
  'nats-restart',
  'postgres-restart',
  'kafka-restart',
  'ingress-restart',
  'ingress-kill',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that need processes this run started itself (not possible with --attach). */
export const PROCESS_FAULTS: readonly FaultKind[] = ['engine-kill', 'engine-pause', 'ingress-restart', 'ingress-kill'];

/** Services `hack/infra.sh restart` knows: these faults act on the services of the machine chaos runs on. */
export const SERVICE_OF: Partial<Record<FaultKind, 'redis' | 'nats' | 'postgres' | 'kafka'>> = {
  'redis-restart': 'redis',
  'nats-restart': 'nats',
  'postgres-restart': 'postgres',
  'kafka-restart': 'kafka',
};

/** One planned fault. */
export interface PlannedFault {
  /** Offset from the start of the load, ms. */
  readonly atMs: number;
  readonly kind: FaultKind;
  /** engine-pause: how long the engine stays stopped, ms. */
  readonly durationMs?: number;
}

/** The order `default` uses: process faults first, then each dependency, then the ingress. */
export const DEFAULT_ORDER: readonly FaultKind[] = [
  'engine-kill',
  'engine-pause',
  'redis-restart',
  'nats-restart',
  'postgres-restart',
  'kafka-restart',
  'ingress-kill',
];

/**
 * Every fault of `kinds`, evenly spaced from 5 s until 10 s before the end of the load, so the
 * system has time to show each fault's effect and recover from the last one.
 */
export function defaultSchedule(loadMs: number, kinds: readonly FaultKind[], pauseMs: number): PlannedFault[] {
  if (kinds.length === 0) return [];
  const first = 5000;
  const last = Math.max(first, loadMs - 10_000);
  const step = kinds.length === 1 ? 0 : (last - first) / (kinds.length - 1);
  return kinds.map((kind, i) => ({
    atMs: Math.round(first + i * step),
    kind,
    ...(kind === 'engine-pause' ? { durationMs: pauseMs } : {}),
  }));
}

/** Parses `none`, `default`, or `OFFSET:KIND[=DURATION],…` (sorted by offset). */
export function parseSchedule(text: string, options: { loadMs: number; pauseMs: number; allowed: readonly FaultKind[] }): PlannedFault[] {
  const trimmed = text.trim();
  if (trimmed === 'none' || trimmed === '') return [];
  if (trimmed === 'default')
    return defaultSchedule(
      options.loadMs,
      DEFAULT_ORDER.filter((k) => options.allowed.includes(k)),
      options.pauseMs,
    );
  const faults = trimmed.split(',').map((part) => {
    const match = /^([^:]+):([a-z-]+)(?:=(.+))?$/.exec(part.trim());
    if (match === null) throw new UsageError(`--faults: ${JSON.stringify(part)} is not OFFSET:KIND[=DURATION] (e.g. 10s:engine-kill)`);
    const kind = match[2] as FaultKind;
    if (!FAULT_KINDS.includes(kind)) throw new UsageError(`--faults: unknown fault ${kind} (known: ${FAULT_KINDS.join(', ')})`);
    if (!options.allowed.includes(kind))
      throw new UsageError(`--faults: ${kind} needs processes this run manages (not possible with --attach)`);
    if (match[3] !== undefined && kind !== 'engine-pause') throw new UsageError(`--faults: only engine-pause takes a duration (${part})`);
    const atMs = parseDurationMs(match[1]!, 'faults');
    if (atMs >= options.loadMs) throw new UsageError(`--faults: ${part} is after the load ends (${options.loadMs / 1000}s)`);
    return {
      atMs,
      kind,
      ...(kind === 'engine-pause' ? { durationMs: match[3] === undefined ? options.pauseMs : parseDurationMs(match[3], 'faults') } : {}),
    };
  });
  return faults.sort((a, b) => a.atMs - b.atMs);
}

/**
 * The schedule of a chaos run's `--faults` (`text`; undefined when the flag was not given).
 * Locally the run owns its engines and ingresses, and the dependencies are this machine's
 * (`hack/infra.sh`): the default is `default`, every kind of fault. Attached (`--attach`) to a
 * system it did not start, it loads `targets` while an external tool injects the faults: the
 * default is `none`; engine and ingress faults need processes this run started, so are refused;
 * and dependency restarts, which act through this machine's `hack/infra.sh`, restart the services of
 * the system under test only when that system runs on this machine — with a target that is not
 * loopback they would restart this machine's services and report them as the target's faults, and
 * are refused.
 */
export function chaosSchedule(
  text: string | undefined,
  options: { loadMs: number; pauseMs: number; attach: boolean; targets: readonly string[] },
): PlannedFault[] {
  const { loadMs, pauseMs } = options;
  if (!options.attach) return parseSchedule(text ?? 'default', { loadMs, pauseMs, allowed: FAULT_KINDS });
  const allowed = FAULT_KINDS.filter((k) => !PROCESS_FAULTS.includes(k));
  const schedule = parseSchedule(text ?? 'none', { loadMs, pauseMs, allowed });
  const remote = options.targets.filter((target) => !isLoopbackHost(new URL(target).hostname));
  const restarts = [...new Set(schedule.filter((f) => SERVICE_OF[f.kind] !== undefined).map((f) => f.kind))];
  if (remote.length > 0 && restarts.length > 0)
    throw new UsageError(
      `--faults: ${restarts.join(', ')} would restart this machine's services (through hack/infra.sh), not those of ` +
        `${remote.join(', ')}: attached to a remote system, let its own chaos tool inject the faults (k8s/jobs/) and ` +
        `pass --faults none (the default with --attach)`,
    );
  return schedule;
}
