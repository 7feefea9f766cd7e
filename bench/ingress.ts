/**
 * `npm run bench:ingress` — the ingress under load, against the ceiling of the HTTP layer.
 *
 * Starts, on this machine and from the compiled build (bench/build.ts): a no-op Koa route (the
 * ceiling), one `sentinel engine` and one `sentinel ingress` process (as pods would run them) on a
 * freshly provisioned event, then drives
 * each with the same load client (autocannon) at the same concurrency:
 *
 *   noop    the hot case's requests (each with its own token and Idempotency-Key, built by the
 *           client exactly as for hot) to a Koa route that answers 201 `{}` at once
 *   hot     every request reserves the same seat (one-shot hold + confirm): one 201, the rest 409
 *   spread  every request holds a different seat (durable: group-committed to Postgres before 201)
 *
 * Prints reservations per second and p50/p99 latency for each, and each against the ceiling
 * (targets: hot ≥ 50%, spread ≥ 25%, p99 ≤ 100 ms at concurrency 500). `--json` for machines.
 *
 * Needs the local infrastructure (`bash hack/infra.sh up`; `eval "$(bash hack/infra.sh env)"`).
 */
import type { ChildProcess } from 'node:child_process';
import { cpuDelta, cpuSeconds, localServicePids, ownCpuSeconds } from '../src/jobs/cpu-accounting.js';
import { freePort } from '../src/jobs/local-stack.js';
import { waitFor } from '../src/jobs/wait.js';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config.js';
import { compileForBench, startServer } from './build.js';
import { useFreshBenchDatabase } from './database.js';
import { LAYOUT_LIMITS } from '../src/domain/layout.js';
import { median } from './median.js';
import { migrate } from '../src/adapters/postgres/migrate.js';
import { createPgPool } from '../src/adapters/postgres/pool.js';
import { provisionEvent } from '../src/engine/provision.js';
import { mintToken } from '../src/ingress/auth.js';
import { silentLogger } from '../src/log.js';
import { retireBenchEvent } from './retire.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SHARD_HISTOGRAM = 'sentinel_ingress_shard_request_duration_seconds';
const SERVER_HISTOGRAM = 'sentinel_ingress_http_request_duration_seconds';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '500' },
    workers: { type: 'string', default: '0' },
    scenarios: { type: 'string', default: 'noop,hot,spread' },
    shards: { type: 'string', default: '4' },
    // One ingress process per core, as `sentinel ingress --workers` would be run on this machine.
    'ingress-workers': { type: 'string', default: String(availableParallelism()) },
    json: { type: 'boolean', default: false },
    profile: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  process.stdout.write(`Usage: npm run bench:ingress -- [--duration 10] [--warmup 3] [--rounds 3] [--connections 500] [--workers 0]
                              [--scenarios noop,hot,spread] [--shards 4] [--ingress-workers N]
                              [--json] [--profile DIR]
  --rounds N            run the scenarios N times in turn; each ratio is against its own round's
                        ceiling, and the table shows medians (every round is listed)
  --ingress-workers N   run the ingress as N processes on its port (sentinel ingress --workers N);
                        default: one per core
  --profile DIR   write V8 CPU profiles of the engine, the ingress (each worker) and the no-op server into DIR/<role>/\n`);
  process.exit(0);
}

await main();

interface ScenarioResult {
  readonly scenario: string;
  readonly requestsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
  readonly durationS: number;
  /** Mean NATS round trip to the shard as the ingress measured it (includes the group commit for winners), ms. */
  readonly shardRoundTripMs?: number;
  /** The ingress histogram bucket (ms) that holds the 99th percentile of those round trips. */
  readonly shardP99AtMostMs?: number;
  /**
   * The ingress's own request-duration histogram bucket (ms) that holds the 99th percentile: time
   * from the request's arrival in the ingress to its response, without the client's and the
   * kernel's queueing.
   */
  readonly serverP99AtMostMs?: number;
  /** Requests answered during the measured run. */
  readonly requests: number;
  /** CPU milliseconds per request, by component (Linux /proc; the load client is this process). */
  readonly cpuMsPerRequest?: Record<string, number>;
}

/** A Prometheus histogram of the ingress's /metrics, summed over its label sets: sum, count and cumulative buckets. */
interface Histogram {
  readonly sum: number;
  readonly count: number;
  readonly buckets: ReadonlyMap<number, number>;
}

async function scrapeHistogram(ingress: string, name: string): Promise<Histogram> {
  const text = await (await fetch(`${ingress}/metrics`)).text();
  let sum = 0;
  let count = 0;
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    const value = Number(line.split(' ').pop());
    if (line.startsWith(`${name}_sum{`)) sum += value;
    else if (line.startsWith(`${name}_count{`)) count += value;
    else if (line.startsWith(`${name}_bucket{`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      const bound = le === '+Inf' ? Infinity : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    }
  }
  return { sum, count, buckets };
}

/** What happened between two scrapes: count, mean (ms) and the bucket bound (ms) that holds the 99th percentile. */
function histogramDelta(before: Histogram, after: Histogram): { count: number; meanMs: number; p99AtMostMs: number } {
  const count = after.count - before.count;
  let p99AtMostMs = Infinity;
  for (const [bound, cumulative] of [...after.buckets].sort(([a], [b]) => a - b)) {
    if (cumulative - (before.buckets.get(bound) ?? 0) >= 0.99 * count) {
      p99AtMostMs = bound * 1000;
      break;
    }
  }
  return { count, meanMs: count > 0 ? ((after.sum - before.sum) / count) * 1000 : NaN, p99AtMostMs };
}

function progress(message: string): void {
  if (!args.json) process.stderr.write(`${message}\n`);
}

/** Starts a server of the compiled build, with CPU profiling when `--profile` asks for it. */
function start(name: string, command: readonly string[], argv: string[], env: Record<string, string>): ChildProcess {
  const nodeFlags = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}/${name}`] : [];
  return startServer(name, command, argv, { env, nodeFlags, say: progress });
}

async function run(title: string, url: string, options: Partial<autocannon.Options>, durationS: number): Promise<ScenarioResult> {
  const result = await autocannon({
    url,
    connections: Number(args.connections),
    duration: durationS,
    ...(Number(args.workers) > 0 ? { workers: Number(args.workers) } : {}),
    ...options,
    title,
  });
  const statuses: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = stat.count ?? 0;
  return {
    scenario: title,
    requestsPerS: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    statuses,
    errors: result.errors,
    timeouts: result.timeouts,
    durationS: result.duration,
    requests: result.requests.total,
  };
}

async function main(): Promise<void> {
  progress('compiling the build every server runs (bench/build.ts)');
  const build = compileForBench();
  await useFreshBenchDatabase();
  const config = loadConfig(process.env);
  const duration = Number(args.duration);
  const rounds = Number(args.rounds);
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error('--rounds must be a whole number ≥ 1');
  const warmup = Number(args.warmup);
  const shardCount = Number(args.shards);
  const scenarios = args.scenarios.split(',').map((s) => s.trim());
  const pool = createPgPool({ url: config.databaseUrl, max: 4, log: silentLogger });
  await migrate(pool, silentLogger);

  // Sections of 50 rows × 100 seats, enough that the spread case never holds a seat twice: each
  // of its runs (warm-up included) may take up to SPREAD_RATE seats a second — about 1.5 × the most
  // measured here (7,700 holds/s). Not more: an event several times that size costs every process
  // more per hold (Postgres's working set, the engine's heap), which a sale of that size would pay
  // but the ratio to a no-op route should not. A run that outran them would measure refusals, not
  // holds, so it stops the bench (see `spreadSeat`).
  const ROWS = 50;
  const SEATS = 100;
  const SPREAD_RATE = 12_000;
  const spreadRuns = scenarios.filter((s) => s === 'spread').length * rounds;
  const sectionCount = Math.max(48, Math.ceil((spreadRuns * (duration + warmup) * SPREAD_RATE) / (ROWS * SEATS)));
  if (sectionCount * ROWS * SEATS > LAYOUT_LIMITS.maxSeatsTotal) {
    throw new Error(
      `the spread case's ${spreadRuns} run(s) of ${duration + warmup} s need ${(sectionCount * ROWS * SEATS).toLocaleString('en')} seats, ` +
        `more than an event may have (${LAYOUT_LIMITS.maxSeatsTotal.toLocaleString('en')}): fewer --rounds or a shorter --duration`,
    );
  }
  const sections = Array.from({ length: sectionCount }, (_, s) => ({
    id: `S${s + 1}`,
    rows: Array.from({ length: ROWS }, (_, r) => ({ id: String(r + 1), seats: SEATS })),
  }));
  const eventId = `bench-${Date.now().toString(36)}`;
  progress(`provisioning ${eventId}: ${(sections.length * ROWS * SEATS).toLocaleString('en')} seats in ${shardCount} shards`);
  const outcome = await provisionEvent(pool, {
    eventId,
    displayName: 'Ingress benchmark',
    layout: { sections, pools: [] },
    shardCount,
    holdTtlMs: 600_000,
    customerLimit: 100_000,
    admissionRate: 1_000_000,
    saleOpensAt: new Date(Date.now() - 60_000),
    saleClosesAt: new Date(Date.now() + 3_600_000),
  });
  if (outcome.status !== 'created') throw new Error(`provisioning failed: ${JSON.stringify(outcome)}`);

  const children: ChildProcess[] = [];
  const stopAll = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
          }),
      ),
    );
  };
  const results: (ScenarioResult & { round: number })[] = [];
  try {
    const noopPort = await freePort();
    const enginePort = await freePort();
    const ingressPort = await freePort();
    // One no-op process whatever --ingress-workers says: on this machine more no-op processes only
    // take CPU from the load client and lower the ceiling, which would flatter the ratios.
    children.push(start('noop', build.baseline, ['noop', '--port', String(noopPort)], {}));
    children.push(
      start('engine', build.sentinel, ['engine'], {
        SENTINEL_EVENT: eventId,
        SENTINEL_ENGINE_ID: `bench-engine-${process.pid}`,
        SENTINEL_HTTP_PORT: String(enginePort),
      }),
    );
    children.push(
      start(
        'ingress',
        build.sentinel,
        ['ingress', '--port', String(ingressPort), '--host', '127.0.0.1', '--workers', args['ingress-workers']],
        {},
      ),
    );
    const ingress = `http://127.0.0.1:${ingressPort}`;
    await waitFor('the engine', async () => (await fetch(`http://127.0.0.1:${enginePort}/readyz`)).ok, 60_000);
    await waitFor('the ingress', async () => (await fetch(`${ingress}/readyz`)).ok, 60_000);
    await waitFor(
      'the no-op server',
      async () => (await fetch(`http://127.0.0.1:${noopPort}/`, { method: 'POST' })).status === 201,
      60_000,
    );

    // CPU by component, to see where a scenario's requests spend the machine.
    const cpuGroups = {
      noop: [children[0]!.pid ?? -1],
      engine: [children[1]!.pid ?? -1],
      ingress: [children[2]!.pid ?? -1],
      ...localServicePids(ROOT),
    };
    const cpuNow = () => ({ client: ownCpuSeconds(), ...cpuSeconds(cpuGroups) });

    progress('minting 2,000 customer tokens');
    const tokens = await Promise.all(
      Array.from({ length: 2000 }, (_, i) =>
        mintToken({
          secret: config.jwtSecret,
          issuer: config.jwtIssuer,
          audience: config.jwtAudience,
          subject: `bench-customer-${i}`,
          ttlS: 3600,
        }),
      ),
    );
    // Every shard owned and serving: one hold per section's first seat (sections span all shards).
    await waitFor(
      'every shard serving',
      async () => {
        const answers = await Promise.all(
          sections.map((s, i) =>
            fetch(`${ingress}/v1/events/${eventId}/holds`, {
              method: 'POST',
              headers: { authorization: `Bearer ${tokens[i]}`, 'idempotency-key': `warm-${s.id}`, 'content-type': 'application/json' },
              body: JSON.stringify({ seats: [`${s.id}-${ROWS}-${SEATS}`] }),
            }),
          ),
        );
        return answers.every((a) => a.status === 201);
      },
      60_000,
    );

    let sequence = 0; // Idempotency-Keys, unique across scenarios
    let seatIndex = 0; // seats of the spread case, never held twice
    let spreadOverrun = false;
    const headersFor = (i: number) => ({
      authorization: `Bearer ${tokens[i % tokens.length]}`,
      'idempotency-key': `bench-${process.pid}-${i}`,
    });
    /** The n-th seat of the spread case: round-robin over sections (hence shards), then rows and seats. */
    const spreadSeat = (n: number) => {
      if (n >= sections.length * ROWS * SEATS) spreadOverrun = true; // seen after the run: autocannon swallows a throw here
      const section = sections[n % sections.length]!.id;
      const k = Math.floor(n / sections.length);
      return `${section}-${Math.floor(k / SEATS) + 1}-${(k % SEATS) + 1}`;
    };
    const oneShotRequests: Partial<autocannon.Options> = {
      method: 'POST',
      requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, ...headersFor(sequence++) } }) }],
    };
    const plans: Record<string, { url: string; options: Partial<autocannon.Options> }> = {
      // The ceiling: the very requests of the hot case, built by the client the same way (a fresh
      // token and Idempotency-Key each), answered by a route that does nothing.
      noop: {
        url: `http://127.0.0.1:${noopPort}/v1/events/${eventId}/seats/S1-1-1/reserve`,
        options: oneShotRequests,
      },
      hot: {
        url: `${ingress}/v1/events/${eventId}/seats/S1-1-1/reserve`,
        options: oneShotRequests,
      },
      spread: {
        url: `${ingress}/v1/events/${eventId}/holds`,
        options: {
          method: 'POST',
          requests: [
            {
              setupRequest: (request) => ({
                ...request,
                headers: { ...request.headers, ...headersFor(sequence++), 'content-type': 'application/json' },
                body: JSON.stringify({ seats: [spreadSeat(seatIndex++)] }),
              }),
            },
          ],
        },
      },
    };
    for (let round = 1; round <= rounds; round++)
      for (const scenario of scenarios) {
        const plan = plans[scenario];
        if (!plan) throw new Error(`unknown scenario ${scenario} (noop, hot, spread)`);
        if (warmup > 0) {
          progress(`round ${round}/${rounds}, ${scenario}: warming up for ${warmup}s`);
          await run(`${scenario}-warmup`, plan.url, plan.options, warmup);
        }
        progress(`round ${round}/${rounds}, ${scenario}: ${args.connections} connections for ${duration}s`);
        const scrape = async () =>
          scenario === 'noop'
            ? undefined
            : {
                shard: await scrapeHistogram(ingress, SHARD_HISTOGRAM),
                server: await scrapeHistogram(ingress, SERVER_HISTOGRAM),
              };
        const before = await scrape();
        const cpuBefore = cpuNow();
        let result = await run(scenario, plan.url, plan.options, duration);
        const cpu = cpuDelta(cpuBefore, cpuNow());
        if (spreadOverrun)
          throw new Error(
            `the spread case ran out of seats (${seatIndex.toLocaleString('en')} asked for): raise SPREAD_RATE in bench/ingress.ts`,
          );
        if (result.requests > 0) {
          const perRequest = Object.fromEntries(
            Object.entries(cpu)
              .filter(([, seconds]) => seconds > 0)
              .map(([component, seconds]) => [component, Math.round((seconds * 1e6) / result.requests) / 1000]),
          );
          result = { ...result, cpuMsPerRequest: perRequest };
        }
        const after = await scrape();
        if (before !== undefined && after !== undefined) {
          const server = histogramDelta(before.server, after.server);
          result = { ...result, serverP99AtMostMs: server.p99AtMostMs };
          const shard = histogramDelta(before.shard, after.shard);
          if (shard.count > 0)
            result = { ...result, shardRoundTripMs: Math.round(shard.meanMs * 10) / 10, shardP99AtMostMs: shard.p99AtMostMs };
        }
        results.push({ ...result, round });
        progress(
          `round ${round}/${rounds}, ${scenario}: ${result.requestsPerS} req/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, statuses ${JSON.stringify(result.statuses)}` +
            (result.serverP99AtMostMs === undefined ? '' : `, p99 in the ingress ≤ ${result.serverP99AtMostMs} ms`) +
            (result.shardRoundTripMs === undefined
              ? ''
              : `, shard round trip mean ${result.shardRoundTripMs} ms, p99 ≤ ${result.shardP99AtMostMs} ms`),
        );
      }
  } finally {
    await stopAll();
    await retireBenchEvent(pool, config.redisUrl, eventId);
    await pool.end();
  }

  // Each round's ratio is against that round's ceiling: on a shared machine the ceiling itself
  // moves by a third between minutes, and scenarios measured minutes apart would compare noise.
  const targets: Record<string, number> = { hot: 0.5, spread: 0.25 };
  const perRound = results.map((r) => {
    const ceiling = results.find((c) => c.scenario === 'noop' && c.round === r.round)?.requestsPerS;
    return { ...r, ofCeiling: ceiling ? Math.round((r.requestsPerS / ceiling) * 1000) / 10 : null };
  });
  const rows = scenarios.map((scenario) => {
    const runs = perRound.filter((r) => r.scenario === scenario);
    const of = <T>(pick: (r: (typeof runs)[number]) => T | null | undefined) =>
      runs.map(pick).filter((v): v is T => v !== null && v !== undefined);
    const shares = of((r) => r.ofCeiling);
    const ofCeiling = shares.length > 0 ? median(shares) : null;
    const p99Ms = median(of((r) => r.p99Ms));
    const target = targets[scenario];
    const components = new Set(runs.flatMap((r) => Object.keys(r.cpuMsPerRequest ?? {})));
    return {
      scenario,
      requestsPerS: Math.round(median(of((r) => r.requestsPerS))),
      p50Ms: median(of((r) => r.p50Ms)),
      p99Ms,
      serverP99AtMostMs: runs[0]?.serverP99AtMostMs === undefined ? undefined : median(of((r) => r.serverP99AtMostMs)),
      shardRoundTripMs: runs[0]?.shardRoundTripMs === undefined ? undefined : median(of((r) => r.shardRoundTripMs)),
      ofCeiling,
      meetsThroughputTarget: target === undefined || ofCeiling === null ? null : ofCeiling >= target * 100,
      meetsLatencyTarget: scenario === 'noop' ? null : p99Ms <= 100,
      cpuMsPerRequest: Object.fromEntries(
        [...components].map((c) => [c, Math.round(median(of((r) => r.cpuMsPerRequest?.[c])) * 1000) / 1000]),
      ),
      statuses: runs.reduce<Record<string, number>>((sum, r) => {
        for (const [code, n] of Object.entries(r.statuses)) sum[code] = (sum[code] ?? 0) + n;
        return sum;
      }, {}),
      errors: runs.reduce((sum, r) => sum + r.errors, 0),
      rounds: runs,
    };
  });
  if (args.json) {
    process.stdout.write(
      `${JSON.stringify({ connections: Number(args.connections), durationS: duration, rounds, shards: shardCount, ingressWorkers: Number(args['ingress-workers']), results: rows }, null, 2)}\n`,
    );
    return;
  }
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(8) : c.padStart(12))).join(' ');
  process.stdout.write(
    `\nIngress benchmark: ${args.connections} connections, ${duration}s per scenario and round, ${rounds} round(s), ${shardCount} shards, 1 engine, 1 ingress (${args['ingress-workers']} worker process(es))\n` +
      'Each figure is the median over the rounds; each round compares with its own no-op ceiling.\n\n',
  );
  process.stdout.write(`${line(['scenario', 'req/s', 'p50 ms', 'p99 ms', 'ingress p99', 'shard rt ms', '% of noop', 'target'])}\n`);
  for (const r of rows) {
    const target =
      r.scenario === 'noop' ? 'ceiling' : `${r.meetsThroughputTarget ? 'ok' : 'MISS'} / ${r.meetsLatencyTarget ? 'ok' : 'MISS'}`;
    process.stdout.write(
      `${line([
        r.scenario,
        String(r.requestsPerS),
        String(r.p50Ms),
        String(r.p99Ms),
        r.serverP99AtMostMs === undefined ? '-' : `≤ ${r.serverP99AtMostMs}`,
        r.shardRoundTripMs === undefined ? '-' : String(r.shardRoundTripMs),
        r.ofCeiling === null ? '-' : `${r.ofCeiling}%`,
        target,
      ])}\n`,
    );
  }
  if (rounds > 1) {
    process.stdout.write("\nper round (req/s, % of that round's ceiling, p99 ms):\n");
    for (const r of rows)
      process.stdout.write(
        `  ${r.scenario.padEnd(8)} ${r.rounds.map((x) => `${x.requestsPerS}${x.scenario === 'noop' ? '' : ` (${x.ofCeiling}%)`} p99 ${x.p99Ms}`).join(' | ')}\n`,
      );
  }
  process.stdout.write(
    `\nstatuses: ${rows.map((r) => `${r.scenario} ${JSON.stringify(r.statuses)}${r.errors ? ` errors ${r.errors}` : ''}`).join('; ')}\n`,
  );
  process.stdout.write('targets: hot ≥ 50% and spread ≥ 25% of the no-op ceiling (throughput) / p99 ≤ 100 ms (latency)\n');
  process.stdout.write(
    "ingress p99: the bucket of the ingress's own latency histogram that holds its 99th percentile (arrival to response, without the client's queueing)\n",
  );
  process.stdout.write('\nCPU ms per request, by component (median over the rounds; the load client is this process):\n');
  for (const r of rows) {
    const parts = Object.entries(r.cpuMsPerRequest ?? {}).sort(([, a], [, b]) => b - a);
    const total = parts.reduce((sum, [, ms]) => sum + ms, 0);
    process.stdout.write(
      `  ${r.scenario.padEnd(8)} total ${total.toFixed(3)}: ${parts.map(([c, ms]) => `${c} ${ms.toFixed(3)}`).join(', ')}\n`,
    );
  }
}
