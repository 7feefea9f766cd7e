/**
 * Command-line flags of `sentinel operator`, parsed into OperatorSettings. Flags carry what is
 * specific to the operator's deployment (lease, engine image, timings); connection settings come
 * from the environment through `src/config.ts`.
 */
import { parseDuration } from '../duration.js';
import { ConfigError } from '../errors.js';
import { DEFAULT_OPERATOR_SETTINGS, type OperatorSettings } from './operator.js';

/** Parsed flags: settings plus the process-level options. */
export interface OperatorFlags {
  readonly settings: OperatorSettings;
  readonly kubeconfig: string | undefined;
  /** Apply database migrations before starting (default true). */
  readonly migrate: boolean;
  readonly help: boolean;
}

/** One documented flag. */
interface FlagSpec {
  readonly name: string;
  readonly value: string;
  readonly help: string;
}

export const FLAGS: readonly FlagSpec[] = [
  { name: 'kubeconfig', value: 'path', help: 'kubeconfig file (default: $KUBECONFIG, then in-cluster)' },
  { name: 'namespace', value: 'ns', help: 'only reconcile TicketEvents of this namespace (default: $SENTINEL_WATCH_NAMESPACE, else all)' },
  { name: 'identity', value: 'id', help: 'identity in the leader Lease and Events (default: <hostname>-<pid>)' },
  { name: 'leader-elect', value: 'bool', help: 'campaign for the leader Lease before reconciling (default true)' },
  { name: 'lease-name', value: 'name', help: 'leader Lease name (default sentinel-operator)' },
  { name: 'lease-namespace', value: 'ns', help: "leader Lease namespace (default: the pod's namespace, else default)" },
  { name: 'lease-duration', value: 'duration', help: 'how long a standby waits after the last renewal before taking over (default 15s)' },
  { name: 'renew-deadline', value: 'duration', help: 'how long the leader tries to renew before it stops leading (default 10s)' },
  { name: 'retry-period', value: 'duration', help: 'how often to try to acquire or renew the Lease (default 2s)' },
  { name: 'workers', value: 'n', help: 'reconciles in parallel, on different objects (default 4)' },
  { name: 'resync', value: 'duration', help: 'reconcile every TicketEvent at least this often (default 10m)' },
  { name: 'refresh-interval', value: 'duration', help: 'refresh counts and shard status this often during a sale (default 10s)' },
  {
    name: 'drain-timeout',
    value: 'duration',
    help: 'on deletion, wait this long after closing the sale for engines to release shards (default 2m); never while the outbox has unpublished rows',
  },
  { name: 'drain-poll', value: 'duration', help: 'on deletion, look at shard ownership and the outbox this often (default 2s)' },
  { name: 'engine-image', value: 'image', help: 'engine container image (default: the image of this release)' },
  { name: 'engine-image-pull-policy', value: 'policy', help: 'Always, IfNotPresent or Never (default IfNotPresent)' },
  { name: 'engine-service-account', value: 'name', help: 'ServiceAccount of engine pods (default sentinel-engine)' },
  { name: 'engine-config-map', value: 'name', help: 'ConfigMap with shared engine settings, per namespace (default sentinel-engine)' },
  { name: 'engine-secret', value: 'name', help: 'Secret with engine credentials, per namespace (default sentinel-engine)' },
  {
    name: 'engine-settings-hash',
    value: 'text',
    help: 'a digest of what the shared engine ConfigMap and Secret hold (the chart passes one): a new one rolls every engine Deployment',
  },
  {
    name: 'http-host',
    value: 'host',
    help: 'address of the health/metrics server; its port is $SENTINEL_HTTP_PORT (default all addresses: :: (dual-stack) where IPv6 is available, else 0.0.0.0)',
  },
  { name: 'migrate', value: 'bool', help: 'apply database migrations at start (default true)' },
];

/** `--help` text. */
export function flagsUsage(): string {
  const lines = FLAGS.map((f) => `  --${`${f.name}=<${f.value}>`.padEnd(34)} ${f.help}`);
  return [
    'Usage: sentinel operator [flags]',
    '',
    'Reconciles TicketEvents until SIGTERM.',
    '',
    'Flags:',
    ...lines,
    '',
    'A duration is 500ms, 15s, 2m or 1h (with its unit); it must be more than 0.',
    '',
  ].join('\n');
}

/** The longest duration a flag takes: Node runs a timer of more than 2^31 - 1 ms after 1 ms instead. */
const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Parses `500ms`, `15s`, `2m`, `1h`. A bare number is refused: these flags read it as milliseconds
 * until 2026-12-04, the jobs' flags read it as seconds (`src/jobs/options.ts`), so a configuration
 * written with one in mind must not be silently read the other way. Every duration here paces a
 * timer or bounds a wait, so 0 (or less than 1 ms) is refused: a refresh interval of 0 re-queues
 * each TicketEvent at once, a resync of 0 fires on every tick — hot loops. So is one past Node's
 * timer limit, which would fire at once too.
 */
export function parseFlagDuration(text: string, flag: string): number {
  const trimmed = text.trim();
  if (trimmed.startsWith('-')) throw new ConfigError(`--${flag} must be a positive duration, got ${JSON.stringify(text)}`);
  const parsed = parseDuration(trimmed, { units: ['ms', 's', 'm', 'h'] });
  if ('error' in parsed && parsed.error === 'bare')
    throw new ConfigError(`--${flag} needs a unit: ${trimmed}ms or ${trimmed}s? (got ${JSON.stringify(text)})`);
  if ('error' in parsed) throw new ConfigError(`--${flag} must be a duration like 500ms, 15s, 2m or 1h, got ${JSON.stringify(text)}`);
  const ms = parsed.ms;
  if (ms < 1) throw new ConfigError(`--${flag} must be at least 1ms (0 would make a busy loop), got ${JSON.stringify(text)}`);
  if (ms > MAX_DURATION_MS) throw new ConfigError(`--${flag} must be at most 596h (Node's longest timer), got ${JSON.stringify(text)}`);
  return ms;
}

function parseBool(text: string, flag: string): boolean {
  if (text === 'true' || text === '') return true;
  if (text === 'false') return false;
  throw new ConfigError(`--${flag} must be true or false, got ${JSON.stringify(text)}`);
}

function parsePositiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new ConfigError(`--${flag} must be an integer in [1, 1000], got ${JSON.stringify(text)}`);
  return n;
}

/** What the flags default to that depends on the process (hostname, pod namespace, config). */
export interface FlagDefaults {
  readonly identity: string;
  readonly leaseNamespace: string;
  readonly watchNamespace: string;
  readonly httpPort: number;
}

/** Parses argv (`--name=value`, `--name value`, `--bool` for true, `--no-bool` for false). */
export function parseOperatorFlags(argv: readonly string[], defaults: FlagDefaults): OperatorFlags {
  const values = new Map<string, string>();
  const known = new Set(FLAGS.map((f) => f.name));
  const booleans = new Set(FLAGS.filter((f) => f.value === 'bool').map((f) => f.name));
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)} (see --help)`);
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (value === undefined && name.startsWith('no-') && booleans.has(name.slice(3))) {
      name = name.slice(3);
      value = 'false';
    }
    if (!known.has(name)) throw new ConfigError(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (booleans.has(name)) value = 'true';
      else {
        value = argv[++i];
        if (value === undefined) throw new ConfigError(`--${name} needs a value`);
      }
    }
    values.set(name, value);
  }
  const d = DEFAULT_OPERATOR_SETTINGS;
  const duration = (flag: string, fallback: number): number => {
    const v = values.get(flag);
    return v === undefined ? fallback : parseFlagDuration(v, flag);
  };
  const text = (flag: string, fallback: string): string => values.get(flag) ?? fallback;
  const httpHost = values.get('http-host') || undefined;
  const pullPolicy = text('engine-image-pull-policy', d.engine.imagePullPolicy);
  if (pullPolicy !== 'Always' && pullPolicy !== 'IfNotPresent' && pullPolicy !== 'Never') {
    throw new ConfigError(`--engine-image-pull-policy must be Always, IfNotPresent or Never, got ${JSON.stringify(pullPolicy)}`);
  }
  const leaderElection = {
    enabled: parseBool(text('leader-elect', 'true'), 'leader-elect'),
    leaseName: text('lease-name', d.leaderElection.leaseName),
    leaseNamespace: text('lease-namespace', defaults.leaseNamespace),
    leaseDurationMs: duration('lease-duration', d.leaderElection.leaseDurationMs),
    renewDeadlineMs: duration('renew-deadline', d.leaderElection.renewDeadlineMs),
    retryPeriodMs: duration('retry-period', d.leaderElection.retryPeriodMs),
  };
  if (!(leaderElection.leaseDurationMs > leaderElection.renewDeadlineMs && leaderElection.renewDeadlineMs > leaderElection.retryPeriodMs)) {
    throw new ConfigError('leader election needs --lease-duration > --renew-deadline > --retry-period');
  }
  const settings: OperatorSettings = {
    ...d,
    watchNamespace: text('namespace', defaults.watchNamespace),
    identity: text('identity', defaults.identity),
    leaderElection,
    workers: values.has('workers') ? parsePositiveInt(values.get('workers') as string, 'workers') : d.workers,
    resyncMs: duration('resync', d.resyncMs),
    refreshIntervalMs: duration('refresh-interval', d.refreshIntervalMs),
    drainTimeoutMs: duration('drain-timeout', d.drainTimeoutMs),
    drainPollMs: duration('drain-poll', d.drainPollMs),
    engine: {
      ...d.engine,
      image: text('engine-image', d.engine.image),
      imagePullPolicy: pullPolicy,
      serviceAccountName: text('engine-service-account', d.engine.serviceAccountName),
      configMapName: text('engine-config-map', d.engine.configMapName),
      secretName: text('engine-secret', d.engine.secretName),
      ...(values.get('engine-settings-hash') ? { settingsHash: values.get('engine-settings-hash') } : {}),
    },
    // No --http-host: every address (:: or 0.0.0.0).
    http: { port: defaults.httpPort, ...(httpHost === undefined ? {} : { host: httpHost }) },
  };
  return { settings, kubeconfig: values.get('kubeconfig'), migrate: parseBool(text('migrate', 'true'), 'migrate'), help };
}
