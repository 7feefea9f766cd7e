/**
 * The stress flags, shared by `sentinel stress` and `sentinel chaos` (which runs a stress load
 * while it injects faults), and the live progress line on stderr.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { assertTokenConfig, type Config } from '../../config.js';
import {
  newRunId,
  parseChoice,
  parseDurationMs,
  parseDurationRange,
  parseInteger,
  parseNumber,
  parseRange,
  UsageError,
} from '../options.js';
import { checkTargets } from '../targets.js';
import { formatProgress } from './format.js';
import { DEFAULT_SCENARIO_SETTINGS, SCENARIOS, type ScenarioName } from './scenarios.js';
import type { StressOptions, StressProgress } from './stress.js';

export const STRESS_FLAGS = {
  event: { type: 'string' },
  target: { type: 'string', multiple: true },
  scenario: { type: 'string', default: 'flash-sale' },
  buyers: { type: 'string' },
  mode: { type: 'string' },
  concurrency: { type: 'string' },
  rate: { type: 'string' },
  duration: { type: 'string', default: '60s' },
  grace: { type: 'string', default: '15s' },
  seat: { type: 'string' },
  seats: { type: 'string' },
  skew: { type: 'string', default: '0' },
  'one-shot': { type: 'boolean', default: false },
  attempts: { type: 'string', default: String(DEFAULT_SCENARIO_SETTINGS.attempts) },
  think: { type: 'string', default: '200-1000ms' },
  'confirm-rate': { type: 'string', default: String(DEFAULT_SCENARIO_SETTINGS.confirmRate) },
  abandon: { type: 'string', default: 'release' },
  quantity: { type: 'string', default: '2-6' },
  retries: { type: 'string', default: '3' },
  'max-retry-delay': { type: 'string', default: '5s' },
  timeout: { type: 'string', default: '10s' },
  seed: { type: 'string' },
  'run-id': { type: 'string' },
  log: { type: 'string' },
  'allow-remote': { type: 'boolean', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export const STRESS_FLAGS_HELP = `Load:
  --event ID              the event to buy from (required)
  --target URL            ingress base URL, repeatable (default http://127.0.0.1:$SENTINEL_INGRESS_PORT);
                          buyers are spread over the targets
  --scenario NAME         hot-seat | flash-sale | best-available | mixed (default flash-sale)
  --buyers N              buyers (customers, each with their own token) in the run
                          (default: hot-seat 1000, others 5000)
  --mode closed|open      closed: --concurrency buyers at a time; open: --rate arrivals per second
                          (default: open when --rate is given, else closed)
  --concurrency N         closed: buyers in flight (default min(buyers, 1000));
                          open: most in flight before arrivals are shed (default 2000)
  --rate N                open loop: buyer arrivals per second (default 500)
  --duration D            no buyer starts after D (default 60s); the run always stops by itself
  --grace D               then buyers in flight get D to finish before they are cut (default 15s)
Scenario:
  --seat ID               hot-seat: the seat everyone wants (default the layout's first seat)
  --seats N               flash-sale: sell only the first N seats of the layout
  --skew X                flash-sale: bias toward the best seats, 0 = uniform (default 0)
  --one-shot              flash-sale: one-shot reserve (hold + confirm in one request)
  --attempts N            seats a flash-sale buyer tries, moving on after each 409 (default 3)
  --think MIN-MAX         think time between hold and confirm (default 200-1000ms)
  --confirm-rate P        share of holds confirmed; the rest are abandoned (default 0.8)
  --abandon release|expire  abandoning buyers DELETE their hold, or let it expire (default release)
  --quantity MIN-MAX      best-available: seats per request (default 2-6)
Client:
  --retries N             retries of a request on 429, 503 or a lost connection, same key (default 3)
  --max-retry-delay D     longest wait before a retry; Retry-After is honoured up to it (default 5s)
  --timeout D             per attempt (default 10s)
  --seed N                random seed: the same seed asks for the same seats (default random)
  --run-id ID             prefix of customer ids and Idempotency-Keys (default stress-<random>)
  --log PATH|none         response log for \`sentinel verify\` (default $TMPDIR/<run-id>.jsonl)
  --allow-remote          allow non-loopback targets (a cluster Job); refused otherwise
`;

type StressFlagValues = {
  [K in keyof typeof STRESS_FLAGS]?: (typeof STRESS_FLAGS)[K] extends { multiple: true }
    ? string[]
    : (typeof STRESS_FLAGS)[K] extends { type: 'boolean' }
      ? boolean
      : string;
};

/** StressOptions from parsed flags (everything but progress and signal). */
export function stressOptionsFrom(values: StressFlagValues, config: Config): StressOptions {
  // The buyers' tokens are signed with the secret: in production, not with the public development one.
  assertTokenConfig(config, 'mint');
  if (!values.event) throw new UsageError('--event is required');
  const scenario = parseChoice(values.scenario ?? 'flash-sale', 'scenario', SCENARIOS) as ScenarioName;
  // --rate is the open loop's: given alone, it asks for one (it used to be ignored, the run closed loop).
  const mode = parseChoice(values.mode ?? (values.rate === undefined ? 'closed' : 'open'), 'mode', ['closed', 'open'] as const);
  if (mode === 'closed' && values.rate !== undefined)
    throw new UsageError('--rate is the arrival rate of --mode open; a closed loop takes --concurrency');
  const buyers =
    values.buyers === undefined ? (scenario === 'hot-seat' ? 1000 : 5000) : parseInteger(values.buyers, 'buyers', 1, 10_000_000);
  const concurrency =
    values.concurrency === undefined
      ? mode === 'closed'
        ? Math.min(buyers, 1000)
        : 2000
      : parseInteger(values.concurrency, 'concurrency', 1, 100_000);
  const runId = values['run-id'] ?? newRunId('stress');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(runId)) throw new UsageError('--run-id must be 1-64 letters, digits, . _ -');
  const log = values.log === 'none' ? undefined : (values.log ?? join(tmpdir(), `${runId}.jsonl`));
  return {
    eventId: values.event,
    targets: checkTargets(values.target ?? [`http://127.0.0.1:${config.ingressPort}`], values['allow-remote'] ?? false),
    scenario: {
      scenario,
      ...(values.seat === undefined ? {} : { seat: values.seat }),
      ...(values.seats === undefined ? {} : { seatLimit: parseInteger(values.seats, 'seats', 1) }),
      skew: parseNumber(values.skew ?? '0', 'skew', 0, 10),
      oneShot: values['one-shot'] ?? false,
      attempts: parseInteger(values.attempts ?? '3', 'attempts', 1, 100),
      thinkMs: parseDurationRange(values.think ?? '200-1000ms', 'think'),
      confirmRate: parseNumber(values['confirm-rate'] ?? '0.8', 'confirm-rate', 0, 1),
      abandon: parseChoice(values.abandon ?? 'release', 'abandon', ['release', 'expire'] as const),
      quantity: parseRange(values.quantity ?? '2-6', 'quantity', 1),
    },
    buyers,
    mode,
    concurrency,
    rate: values.rate === undefined ? 500 : parseNumber(values.rate, 'rate', 0.01, 1_000_000),
    durationS: parseDurationMs(values.duration ?? '60s', 'duration') / 1000,
    graceS: parseDurationMs(values.grace ?? '15s', 'grace') / 1000,
    retries: parseInteger(values.retries ?? '3', 'retries', 0, 100),
    maxRetryDelayMs: parseDurationMs(values['max-retry-delay'] ?? '5s', 'max-retry-delay'),
    timeoutMs: parseDurationMs(values.timeout ?? '10s', 'timeout'),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : parseInteger(values.seed, 'seed', 0, 2 ** 32 - 1),
    runId,
    tokens: { secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience, ttlS: 6 * 3600 },
    ...(log === undefined ? {} : { logPath: log }),
  };
}

/** The live progress line: rewritten in place on a terminal, one line every 5 s otherwise. */
export function progressPrinter(
  stream: NodeJS.WritableStream & { isTTY?: boolean },
  label = '',
): { update: (p: StressProgress) => void; done: () => void } {
  let last = 0;
  let drawn = false;
  return {
    update(p) {
      const line = `${label}${formatProgress(p)}`;
      if (stream.isTTY) {
        stream.write(`\r\x1b[K${line}`);
        drawn = true;
      } else if (p.elapsedS - last >= 5) {
        last = p.elapsedS;
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}
