import { pino } from 'pino';
import { ConfigError } from './errors.js';

/**
 * The longest idempotency window any process may be configured with (s): retention keeps the keys
 * of events other engines serve this long (src/engine/retention.ts).
 */
export const MAX_IDEMPOTENCY_TTL_S = 30 * 86_400;

/**
 * Every knob Sentinel has, with its environment variable and its default. This module is the only
 * place that reads `process.env`; `loadConfig()` validates once and returns a frozen object that is
 * passed down explicitly.
 */
export interface Config {
  /** Production mode (`NODE_ENV=production`): refuses development defaults such as the JWT secret. */
  readonly production: boolean;
  /** Log level (`LOG_LEVEL`, default `info`). */
  readonly logLevel: string;
  /** Postgres connection string (`DATABASE_URL`, default the local `hack/infra.sh` instance). */
  readonly databaseUrl: string;
  /** Max Postgres connections per process (`SENTINEL_PG_POOL_SIZE`, default 10). */
  readonly pgPoolSize: number;
  /** Redis connection string (`REDIS_URL`, default `redis://127.0.0.1:16379`). */
  readonly redisUrl: string;
  /** NATS servers, comma separated (`NATS_URL`, default `nats://127.0.0.1:14222`). */
  readonly natsUrl: string;
  /** Kafka bootstrap brokers, comma separated (`KAFKA_BROKERS`, default `127.0.0.1:19092`). */
  readonly kafkaBrokers: readonly string[];
  /** Kafka topic of confirmed reservations (`SENTINEL_RESERVATIONS_TOPIC`, default `sentinel.reservations`). */
  readonly reservationsTopic: string;
  /** Engine: unique id of this engine process (`SENTINEL_ENGINE_ID`, default `<hostname>-<pid>`). */
  readonly engineId: string;
  /** Engine: shard lease TTL in ms (`SENTINEL_LEASE_TTL_MS`, default 5000). */
  readonly leaseTtlMs: number;
  /** Engine: how often membership and shard balance are re-evaluated, ms (`SENTINEL_REBALANCE_INTERVAL_MS`, default 1000). */
  readonly rebalanceIntervalMs: number;
  /** Engine: group-commit window in ms (`SENTINEL_BATCH_WINDOW_MS`, default 2). */
  readonly batchWindowMs: number;
  /** Engine: most commands in one group commit, and most holds a shard ends on its own in one (`SENTINEL_BATCH_MAX`, default 512). */
  readonly batchMax: number;
  /** Engine: restrict to one event id, or all events on sale when empty (`SENTINEL_EVENT`, default empty). */
  readonly eventFilter: string;
  /** HTTP port for health, readiness and metrics of engine/operator (`SENTINEL_HTTP_PORT`, default 9464). */
  readonly httpPort: number;
  /** Ingress HTTP port (`SENTINEL_INGRESS_PORT`, default 8080). */
  readonly ingressPort: number;
  /** Ingress: processes serving the port, 1 = no supervisor (`SENTINEL_INGRESS_WORKERS`, default 1). */
  readonly ingressWorkers: number;
  /**
   * Ingress: listen backlog, connections the kernel completes before the process accepts them
   * (`SENTINEL_INGRESS_BACKLOG`, default 4096; the kernel caps it at `net.core.somaxconn`).
   */
  readonly ingressBacklog: number;
  /** Ingress: deadline of one shard request in ms (`SENTINEL_SHARD_TIMEOUT_MS`, default 2000). */
  readonly shardTimeoutMs: number;
  /** Ingress: HS256 secret for bearer tokens (`SENTINEL_JWT_SECRET`, default a development secret). */
  readonly jwtSecret: string;
  /** Ingress: JWKS URL; when set it is used instead of the HS256 secret (`SENTINEL_JWKS_URL`). */
  readonly jwksUrl: string;
  /** Expected JWT issuer (`SENTINEL_JWT_ISSUER`, default `sentinel`). */
  readonly jwtIssuer: string;
  /** Expected JWT audience (`SENTINEL_JWT_AUDIENCE`, default `sentinel-api`). */
  readonly jwtAudience: string;
  /** Idempotency-key retention in seconds (`SENTINEL_IDEMPOTENCY_TTL_S`, default 86400). */
  readonly idempotencyTtlS: number;
  /** Engine: how long published outbox rows are kept, s (`SENTINEL_OUTBOX_RETENTION_S`, default 604800: 7 days). */
  readonly outboxRetentionS: number;
  /** Engine: how often it deletes expired idempotency keys and old outbox rows, s (`SENTINEL_RETENTION_INTERVAL_S`, default 600). */
  readonly retentionIntervalS: number;
  /** Operator: namespace to watch, all when empty (`SENTINEL_WATCH_NAMESPACE`). */
  readonly watchNamespace: string;
  /**
   * The pid of the process that owns this one, or 0 (`SENTINEL_EXIT_WITH_PARENT`, default 0).
   * When set, engine, ingress and operator leave a terminal's Ctrl-C to that owner and stop
   * gracefully, as on SIGTERM, once it is gone. LocalStack sets it for the processes it starts
   * (src/cli/signals.ts).
   */
  readonly exitWithParent: number;
}

/**
 * The range of `SENTINEL_LEASE_TTL_MS` (ms): engines refuse a lease TTL outside it, and so does
 * `sentinel chaos --lease-ttl`, whose engines would.
 */
export const LEASE_TTL_MS_RANGE = Object.freeze({ min: 500, max: 600_000 });

/**
 * The range of `SENTINEL_REBALANCE_INTERVAL_MS` (ms), which must also be at most half of the lease
 * TTL (`loadConfig`); `sentinel chaos` derives its engines' interval from `--lease-ttl` within it.
 */
export const REBALANCE_INTERVAL_MS_RANGE = Object.freeze({ min: 50, max: 60_000 });

/** The highest TCP port. Every port Sentinel reads, from a variable or a flag, is checked by `parsePort`. */
export const MAX_PORT = 65_535;

/**
 * The log levels `LOG_LEVEL` takes: pino's, and `silent`. pino throws on any other when the logger
 * is made — with a stack, and after the configuration was accepted.
 */
export const LOG_LEVELS: readonly string[] = Object.freeze([...Object.keys(pino.levels.values), 'silent']);

/**
 * A TCP port, 0 (any free port) to 65535, written as decimal digits; `name` is the variable or flag
 * it came from, named in the ConfigError that refuses anything else. The one rule for every port
 * Sentinel is given: a larger number passed a flag's check once and failed later in `listen`, after
 * the process had connected to everything.
 */
export function parsePort(text: string, name: string): number {
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < 0 || value > MAX_PORT) {
    throw new ConfigError(`${name} must be a port, an integer in [0, ${MAX_PORT}], got ${JSON.stringify(text)}`);
  }
  return value;
}

/**
 * A URL as messages and logs may show it: without user name, password or query (where a client
 * library may take a password too). Text that is not a URL loses whatever precedes an `@`.
 */
export function urlForDisplay(text: string): string {
  // `user:secret@host:4222` (a NATS server without a scheme) parses as a URL of scheme `user:`.
  if (!text.includes('://')) return text.trim().replace(/^[^@/]*@/, '');
  try {
    const parsed = new URL(text.trim());
    parsed.username = '';
    parsed.password = '';
    parsed.search = '';
    parsed.hash = '';
    return parsed.toString();
  } catch {
    return text.trim().replace(/^([^/]*\/\/)?[^@/]*@/, '$1');
  }
}

/** The variable a job sets to its own pid in the environment of a process it starts and owns (`Config.exitWithParent`). */
export const EXIT_WITH_PARENT_ENV = 'SENTINEL_EXIT_WITH_PARENT';

/** The HS256 secret used when none is configured: fine on a laptop, refused when NODE_ENV=production. */
export const DEVELOPMENT_JWT_SECRET = 'sentinel-development-secret-do-not-use-in-production';

type Env = Readonly<Record<string, string | undefined>>;

function str(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === '' ? fallback : value;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return value;
}

function port(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  return raw === undefined || raw === '' ? fallback : parsePort(raw, name);
}

/**
 * `text` parsed as a URL with one of `protocols`, or a ConfigError naming the variable `name` — and,
 * for an entry of a list, `entry` as it was written.
 */
function checkedUrl(text: string, name: string, protocols: readonly string[], entry?: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new ConfigError(`${name}${entry === undefined ? '' : ' entry'} is not a URL: ${JSON.stringify(urlForDisplay(entry ?? text))}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      `${name}${entry === undefined ? '' : ` entry ${JSON.stringify(urlForDisplay(entry))}`} must use ${protocols.join(' or ')}, got ${parsed.protocol}`,
    );
  }
  return parsed;
}

function url(env: Env, name: string, fallback: string, protocols: readonly string[]): string {
  const value = str(env, name, fallback);
  checkedUrl(value.split(',')[0] ?? value, name, protocols);
  return value;
}

/**
 * A comma-separated list of URLs (NATS servers): every entry is checked, not only the first. An
 * entry without a scheme (`host:port`, as the NATS client takes it) stands for the first protocol.
 */
function urlList(env: Env, name: string, fallback: string, protocols: readonly string[]): string {
  const value = str(env, name, fallback);
  for (const entry of value.split(',')) {
    const trimmed = entry.trim();
    if (trimmed === '') throw new ConfigError(`${name} has an empty entry: ${JSON.stringify(value)}`);
    checkedUrl(trimmed.includes('://') ? trimmed : `${protocols[0]}//${trimmed}`, name, protocols, trimmed);
  }
  return value;
}

/**
 * A URL the process fetches (the JWKS), or '' when unset: absolute, http or https — `fetch` and
 * jose refuse anything else, and only when the first token arrives, or when the verifier is made
 * (a TypeError with a stack).
 */
function optionalHttpUrl(env: Env, name: string): string {
  const value = str(env, name, '');
  if (value === '') return value;
  let parsed: URL | undefined;
  try {
    parsed = new URL(value);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new ConfigError(
      `${name} must be an absolute http: or https: URL (like https://issuer.example/.well-known/jwks.json), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function logLevel(env: Env, name: string): string {
  const value = str(env, name, 'info');
  if (!LOG_LEVELS.includes(value)) throw new ConfigError(`${name} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

/** Reads and validates the environment once. Throws ConfigError naming the variable on bad input. */
export function loadConfig(env: Env = process.env, defaults: { hostname?: string; pid?: number } = {}): Config {
  const jwtSecret = str(env, 'SENTINEL_JWT_SECRET', DEVELOPMENT_JWT_SECRET);
  const brokers = str(env, 'KAFKA_BROKERS', '127.0.0.1:19092')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  for (const broker of brokers) {
    if (!/^[^:\s]+:\d+$/.test(broker)) throw new ConfigError(`KAFKA_BROKERS entry must be host:port, got ${JSON.stringify(broker)}`);
  }
  const config: Config = {
    production: env['NODE_ENV'] === 'production',
    logLevel: logLevel(env, 'LOG_LEVEL'),
    databaseUrl: url(env, 'DATABASE_URL', 'postgres://sentinel:sentinel@127.0.0.1:15432/sentinel', ['postgres:', 'postgresql:']),
    pgPoolSize: int(env, 'SENTINEL_PG_POOL_SIZE', 10, 1, 500),
    redisUrl: url(env, 'REDIS_URL', 'redis://127.0.0.1:16379', ['redis:', 'rediss:']),
    natsUrl: urlList(env, 'NATS_URL', 'nats://127.0.0.1:14222', ['nats:', 'tls:']),
    kafkaBrokers: Object.freeze(brokers),
    reservationsTopic: str(env, 'SENTINEL_RESERVATIONS_TOPIC', 'sentinel.reservations'),
    engineId: str(env, 'SENTINEL_ENGINE_ID', `${defaults.hostname ?? 'engine'}-${defaults.pid ?? 0}`),
    leaseTtlMs: int(env, 'SENTINEL_LEASE_TTL_MS', 5000, LEASE_TTL_MS_RANGE.min, LEASE_TTL_MS_RANGE.max),
    rebalanceIntervalMs: int(env, 'SENTINEL_REBALANCE_INTERVAL_MS', 1000, REBALANCE_INTERVAL_MS_RANGE.min, REBALANCE_INTERVAL_MS_RANGE.max),
    batchWindowMs: int(env, 'SENTINEL_BATCH_WINDOW_MS', 2, 0, 1000),
    batchMax: int(env, 'SENTINEL_BATCH_MAX', 512, 1, 100_000),
    eventFilter: str(env, 'SENTINEL_EVENT', ''),
    httpPort: port(env, 'SENTINEL_HTTP_PORT', 9464),
    ingressPort: port(env, 'SENTINEL_INGRESS_PORT', 8080),
    ingressWorkers: int(env, 'SENTINEL_INGRESS_WORKERS', 1, 1, 64),
    ingressBacklog: int(env, 'SENTINEL_INGRESS_BACKLOG', 4096, 1, 65_535),
    shardTimeoutMs: int(env, 'SENTINEL_SHARD_TIMEOUT_MS', 2000, 10, 120_000),
    jwtSecret,
    jwksUrl: optionalHttpUrl(env, 'SENTINEL_JWKS_URL'),
    jwtIssuer: str(env, 'SENTINEL_JWT_ISSUER', 'sentinel'),
    jwtAudience: str(env, 'SENTINEL_JWT_AUDIENCE', 'sentinel-api'),
    idempotencyTtlS: int(env, 'SENTINEL_IDEMPOTENCY_TTL_S', 86_400, 60, MAX_IDEMPOTENCY_TTL_S),
    outboxRetentionS: int(env, 'SENTINEL_OUTBOX_RETENTION_S', 7 * 86_400, 60, 3650 * 86_400),
    retentionIntervalS: int(env, 'SENTINEL_RETENTION_INTERVAL_S', 600, 1, 86_400),
    watchNamespace: str(env, 'SENTINEL_WATCH_NAMESPACE', ''),
    exitWithParent: int(env, EXIT_WITH_PARENT_ENV, 0, 0, 2 ** 22),
  };
  // An engine renews its membership each round, and the membership lapses a lease TTL after the
  // last renewal: rounds further apart would drop a live engine out between them, and the others
  // would take its shards over and over.
  if (2 * config.rebalanceIntervalMs > config.leaseTtlMs) {
    throw new ConfigError(
      `SENTINEL_REBALANCE_INTERVAL_MS (${config.rebalanceIntervalMs}) must be at most half of SENTINEL_LEASE_TTL_MS (${config.leaseTtlMs}): ` +
        'an engine renews its membership once a round, and it lapses a lease TTL after the last renewal',
    );
  }
  return Object.freeze(config);
}

/**
 * In production (`NODE_ENV=production`) no token may be verified or signed with the development
 * secret, which is public. Only the roles that verify tokens (`use: 'verify'`, the ingress) or mint
 * them (`'mint'`, `sentinel token`) call this, so engines and the operator need no secret. A JWKS
 * stands in for the secret where tokens are verified, not where they are signed: `sentinel token`
 * signs with the secret whatever else is set.
 */
export function assertTokenConfig(config: Config, use: 'verify' | 'mint' = 'verify'): void {
  if (!config.production || config.jwtSecret !== DEVELOPMENT_JWT_SECRET) return;
  if (use === 'mint') {
    throw new ConfigError(
      'SENTINEL_JWT_SECRET must be set when NODE_ENV=production: tokens are signed with it, and the development secret is public',
    );
  }
  if (config.jwksUrl === '') throw new ConfigError('SENTINEL_JWT_SECRET or SENTINEL_JWKS_URL must be set when NODE_ENV=production');
}
