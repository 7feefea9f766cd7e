/**
 * `sentinel chaos`: a stress load with a fault schedule, then verify. Locally it provisions an
 * event (unless --event), starts its own engines and ingress, kills/pauses/restarts them and the
 * dependencies; with --attach it loads a system running elsewhere while an external tool injects
 * faults, and verifies afterwards. Exit 0 when every invariant held and the experiment was made
 * as planned; 1 on any violation; 2 on bad usage or an unknown event; 3 when it could not be
 * judged (a planned fault did not run or did not go as planned, the shards were not all owned
 * again after the load, a check could not be made, the run was stopped before its load began, an
 * error stopped its set-up, its load or its verification — with the report of what was done).
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPgPool } from '../adapters/postgres/pool.js';
import { LEASE_TTL_MS_RANGE, REBALANCE_INTERVAL_MS_RANGE } from '../config.js';
import { provisionEvent } from '../engine/provision.js';
import { errorLine, SentinelError } from '../errors.js';
import { eventFacts } from '../jobs/verify/inventory-checks.js';
import { chaosExitCode, ChaosRun } from '../jobs/chaos/chaos.js';
import { EXIT, PrunedEventError } from '../jobs/verify/verify.js';
import { formatChaosReport, formatFault } from '../jobs/chaos/format.js';
import { chaosSchedule } from '../jobs/chaos/schedule.js';
import { LocalStack } from '../jobs/local-stack.js';
import { newRunId, parseDurationMs, parseInteger, UnknownEventError, UsageError } from '../jobs/options.js';
import { progressPrinter, STRESS_FLAGS, STRESS_FLAGS_HELP, stressOptionsFrom } from '../jobs/stress/cli.js';
import { ScenarioPlanner, type InventoryView } from '../jobs/stress/scenarios.js';
import { waitForShards } from '../jobs/wait.js';
import { jobRedis } from '../jobs/job-redis.js';
import { retireEvent } from '../jobs/retire-event.js';
import type { Command } from './commands.js';
import { checkFlags, parseFlags } from './flags.js';

const INFRA_SCRIPT = fileURLToPath(new URL('../../hack/infra.sh', import.meta.url));

/** A Ctrl-C (SIGINT, SIGTERM) before the load began: nothing was loaded, injected or judged. */
class StoppedBeforeLoad extends Error {
  constructor() {
    super('stopped before the load began: no load ran, no fault was injected, nothing was judged');
  }
}

const HELP = `Usage: sentinel chaos [options]

Runs a stress load, injects a schedule of faults while it runs, waits for recovery, then runs
verify over Postgres, the Kafka topic and the load's response log. Every fault is reported with
its time, what it did (e.g. how fast a killed engine's shards were re-owned) and what clients saw.

Faults (--faults 5s:engine-kill,15s:engine-pause=7s,… | default | none; default: default, or none
with --attach):
  engine-kill       SIGKILL the engine owning most shards; a replacement starts (as a Deployment would)
  engine-pause[=D]  SIGSTOP it for D (default 2 × lease TTL + 1 s), then SIGCONT: it must be fenced
  redis-restart, nats-restart, postgres-restart, kafka-restart   hack/infra.sh restart <service>:
                    this machine's services
  ingress-restart   SIGTERM the ingress and start a new one on the same port
  ingress-kill      SIGKILL it instead
  default           ${['engine-kill', 'engine-pause', 'redis-restart', 'nats-restart', 'postgres-restart', 'kafka-restart', 'ingress-kill'].join(', ')},
                    spread from 5 s to 10 s before the end of the load

Local mode (default): provisions a fresh event unless --event, starts its own processes.
  --event ID            use this event instead of provisioning one
  --layout SxRxN        provisioned event: sections × rows × seats (default 8x20x25) + --ga places
  --ga N                general-admission capacity of the provisioned event (default 500)
  --shards N            shards of the provisioned event (default 8)
  --hold-ttl D          hold TTL of the provisioned event (default 30s)
  --engines N           engine processes (default 2)
  --ingresses N         ingress processes; buyers are spread over them (default 1)
  --lease-ttl D         lease TTL of the engines started here, ${spoken(LEASE_TTL_MS_RANGE.min)} to ${spoken(LEASE_TTL_MS_RANGE.max)} (default 3s)
  --keep-event          leave the provisioned event on sale afterwards (default: close it and delete its Redis keys)
Attached mode:
  --attach              load --target (a system this run did not start) while an external tool (Chaos
                        Mesh, LitmusChaos) injects the faults, then verify; no fault of its own by
                        default. Engine and ingress faults are refused (no process of this run to act
                        on); dependency restarts act through this machine's hack/infra.sh, so they are
                        refused unless every --target is loopback (a system running on this machine)
Common:
  --faults LIST         see above (default: default; none with --attach)
  --pause D             default engine-pause length
  --recovery-timeout D  after the load, wait this long for every shard to be owned (default 60s)
  --infra-script PATH   dependency restarts (default: this checkout's hack/infra.sh); like it, any
                        script given is taken to act on this machine: refused with a remote target
  --ttl-slack D, --settle D   as for verify (defaults 2s, 60s)
  --json                print {ok, faults, skipped, unmet, stress, verify, …} instead of the report

Exit: 0 every invariant held and every planned fault ran; 1 a violation; 2 bad usage, found before
any fault: a bad flag or environment variable, an unknown --event, a token the ingress refuses, a
--seat or --scenario the event cannot give, dependency restarts with --attach to a remote --target;
3 the run could not be judged: a fault that did not run or failed, shards not owned again, a check
not made, or an error that stopped the run (Postgres unreachable, engines that did not start) — the
report then says what was done, and that verify was not made.

The load (defaults differ from \`sentinel stress\`: mixed scenario, open loop at 100 buyers/s for 70s,
think 100-500ms, 8 retries, 2s max retry delay, 5s timeout):
${STRESS_FLAGS_HELP}`;

const FLAGS = {
  ...STRESS_FLAGS,
  scenario: { type: 'string', default: 'mixed' },
  mode: { type: 'string', default: 'open' },
  // No default here: `--rate` means an open loop, so it is given (100) only to one (loadFlags).
  rate: { type: 'string' },
  duration: { type: 'string', default: '70s' },
  buyers: { type: 'string', default: '1000000' },
  think: { type: 'string', default: '100-500ms' },
  retries: { type: 'string', default: '8' },
  'max-retry-delay': { type: 'string', default: '2s' },
  timeout: { type: 'string', default: '5s' },
  layout: { type: 'string', default: '8x20x25' },
  ga: { type: 'string', default: '500' },
  shards: { type: 'string', default: '8' },
  'hold-ttl': { type: 'string', default: '30s' },
  engines: { type: 'string', default: '2' },
  ingresses: { type: 'string', default: '1' },
  'lease-ttl': { type: 'string', default: '3s' },
  'keep-event': { type: 'boolean', default: false },
  attach: { type: 'boolean', default: false },
  // default, or none with --attach (chaosSchedule)
  faults: { type: 'string' },
  pause: { type: 'string' },
  'recovery-timeout': { type: 'string', default: '60s' },
  'infra-script': { type: 'string', default: INFRA_SCRIPT },
  'ttl-slack': { type: 'string', default: '2s' },
  settle: { type: 'string', default: '60s' },
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * The layout chaos provisions: sections A, B, … of rows 1, 2, … and a GA pool. The same object
 * is the inventory as the API will describe it, against which the load's scenario is checked.
 */
function provisionedInventory(settings: { sections: number; rows: number; seats: number; ga: number }): InventoryView {
  return {
    sections: Array.from({ length: settings.sections }, (_, s) => ({
      id: String.fromCharCode(65 + s),
      rows: Array.from({ length: settings.rows }, (_, r) => ({ id: String(r + 1), seats: settings.seats })),
    })),
    pools: settings.ga > 0 ? [{ id: 'GA', capacity: settings.ga }] : [],
  };
}

/** `ms` as a person would write it: 500ms, 3s, 10m. */
function spoken(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * `--lease-ttl`, within the range the engines it starts take for SENTINEL_LEASE_TTL_MS (config.ts):
 * one outside it is bad usage here, not engines that refuse to start once the event is provisioned.
 */
function leaseTtlFrom(text: string): number {
  const ms = parseDurationMs(text, 'lease-ttl');
  const { min, max } = LEASE_TTL_MS_RANGE;
  if (ms < min || ms > max) {
    throw new UsageError(
      `--lease-ttl must be from ${spoken(min)} to ${spoken(max)}, the range of the engines' SENTINEL_LEASE_TTL_MS (got ${JSON.stringify(text)})`,
    );
  }
  return ms;
}

/**
 * The membership round of the engines started here: a sixth of their lease TTL (at least 100 ms,
 * so at most half of the shortest TTL, as the engines require), and no longer than
 * SENTINEL_REBALANCE_INTERVAL_MS may be — which a sixth of a 10-minute TTL would be.
 */
export function rebalanceIntervalFor(leaseTtlMs: number): number {
  return Math.min(REBALANCE_INTERVAL_MS_RANGE.max, Math.max(100, Math.round(leaseTtlMs / 6)));
}

export const chaosCommand: Command = {
  summary: 'inject faults (kill/pause engines, restart dependencies and ingress) during a stress load, then verify',
  // An error that stops the run is not a violation: not judged.
  errorExit: EXIT.notChecked,
  async run({ config, log, argv, stdout, stderr }) {
    const parsed = parseFlags({ argv, stdout, stderr }, FLAGS, HELP);
    if ('exit' in parsed) return parsed.exit;
    const { values } = parsed;
    // The load's flags: an open loop (the default) at 100 buyers/s unless --rate says otherwise.
    const loadFlags = { ...values, rate: values.rate ?? (values.mode === 'closed' ? undefined : '100') };
    const runId = values['run-id'] ?? newRunId('chaos');
    const say = (message: string) => {
      if (!values.json) stderr.write(`chaos: ${message}\n`);
    };
    const checked = checkFlags({ stderr }, HELP, () => {
      const loadMs = parseDurationMs(values.duration, 'duration');
      const leaseTtlMs = leaseTtlFrom(values['lease-ttl']);
      const pauseMs = values.pause === undefined ? 2 * leaseTtlMs + 1000 : parseDurationMs(values.pause, 'pause');
      if (values.attach && !values.event) throw new UsageError('--attach needs --event (and --target)');
      const layout = /^(\d+)x(\d+)x(\d+)$/.exec(values.layout);
      if (layout === null) throw new UsageError('--layout must be SECTIONSxROWSxSEATS, e.g. 8x20x25');
      // The load's flags are checked now (with a placeholder event when one will be provisioned)…
      const load = stressOptionsFrom({ ...loadFlags, event: values.event ?? 'placeholder', 'run-id': runId }, config);
      const settings = {
        loadMs,
        leaseTtlMs,
        schedule: chaosSchedule(values.faults, { loadMs, pauseMs, attach: values.attach, targets: load.targets }),
        sections: parseInteger(layout[1]!, 'layout', 1, 26),
        rows: parseInteger(layout[2]!, 'layout', 1, 1000),
        seats: parseInteger(layout[3]!, 'layout', 1, 1000),
        ga: parseInteger(values.ga, 'ga', 0),
        shards: parseInteger(values.shards, 'shards', 1, 1024),
        holdTtlMs: parseDurationMs(values['hold-ttl'], 'hold-ttl'),
        engines: parseInteger(values.engines, 'engines', 1, 32),
        ingresses: parseInteger(values.ingresses, 'ingresses', 1, 16),
        recoveryTimeoutMs: parseDurationMs(values['recovery-timeout'], 'recovery-timeout'),
        ttlSlackMs: parseDurationMs(values['ttl-slack'], 'ttl-slack'),
        settleTimeoutMs: parseDurationMs(values.settle, 'settle'),
      };
      // …and so is its scenario against the event to provision (a --seat it will not have, hot-seat
      // without seats), before anything starts. An existing event's is checked when the load begins.
      if (values.event === undefined) new ScenarioPlanner(provisionedInventory(settings), load.scenario, load.seed, runId);
      return settings;
    });
    if ('exit' in checked) return checked.exit;
    const settings = checked.value;

    const workDir = join(tmpdir(), `sentinel-${runId}`);
    mkdirSync(workDir, { recursive: true });
    // Dependency restarts are expected here: their connection errors are not news.
    const pool = createPgPool({
      url: config.databaseUrl,
      max: 4,
      log: log.child({}, { level: 'error' }),
      applicationName: 'sentinel-chaos',
    });
    const redis = jobRedis(config.redisUrl, log.child({}, { level: 'error' }));
    const stack = values.attach ? undefined : new LocalStack({ env: { LOG_LEVEL: 'info' }, logDir: workDir, namePrefix: `${runId}-` });
    const killOnExit = () => stack?.killAllNow();
    process.once('exit', killOnExit);
    const stop = new AbortController();
    // The first signal stops the run (the load winds down, then the usual report); a second one
    // does not wait: every process this run started is killed (a paused engine resumed first, so
    // it can die) and chaos exits — Node's own handling of that signal would leave them running.
    const onSignal = (signal: NodeJS.Signals) => {
      if (!stop.signal.aborted) return stop.abort();
      stack?.killAllNow();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Set-up (provisioning, processes, shards) runs to its next step, then stops: the finally below
    // takes down what was started.
    const goOn = () => {
      if (stop.signal.aborted) throw new StoppedBeforeLoad();
    };
    let provisioned: string | undefined;
    let progress: ReturnType<typeof progressPrinter> | undefined;
    /** Whether the load's clock started: from then on the faults it made are ChaosRun's to report. */
    let loadBegan = false;
    try {
      let eventId = values.event;
      // A mistyped --event fails here, before any process or load starts (locally engines would wait
      // for shards that do not exist; attached, the load would fail at its first request).
      const facts = eventId === undefined ? undefined : await eventFacts(pool, eventId);
      if (eventId !== undefined && facts === undefined) throw new UnknownEventError(eventId);
      // Its verify would not judge it (PrunedEventError): say so before any load.
      if (facts?.prunedAt !== undefined) throw new UsageError(new PrunedEventError(facts.id, facts.prunedAt).message);
      goOn();
      if (eventId === undefined) {
        eventId = runId.toLowerCase();
        const outcome = await provisionEvent(pool, {
          eventId,
          displayName: `Chaos run ${runId}`,
          layout: provisionedInventory(settings),
          shardCount: settings.shards,
          holdTtlMs: settings.holdTtlMs,
          customerLimit: 6,
          admissionRate: 1_000_000,
          saleOpensAt: new Date(Date.now() - 60_000),
          saleClosesAt: new Date(Date.now() + 24 * 3_600_000),
        });
        if (outcome.status !== 'created')
          throw new SentinelError('chaos_provision', `could not provision ${eventId}: ${JSON.stringify(outcome)}`);
        provisioned = eventId;
        say(
          `provisioned ${eventId}: ${settings.sections}×${settings.rows}×${settings.seats} seats + ${settings.ga} GA in ${settings.shards} shards`,
        );
      }
      const engineEnv = {
        SENTINEL_LEASE_TTL_MS: String(settings.leaseTtlMs),
        SENTINEL_REBALANCE_INTERVAL_MS: String(rebalanceIntervalFor(settings.leaseTtlMs)),
      };
      let targets = values.target;
      if (stack) {
        say(`starting ${settings.engines} engine(s) and ${settings.ingresses} ingress(es); logs in ${workDir}`);
        goOn();
        await Promise.all(Array.from({ length: settings.engines }, () => stack.startEngine(eventId!, engineEnv)));
        goOn();
        const ingresses = await Promise.all(Array.from({ length: settings.ingresses }, () => stack.startIngress()));
        targets = ingresses.map((p) => p.url);
        goOn();
        await waitForShards(pool, eventId, 60_000, stop.signal);
      }
      // The last look before the load: a stop from here on is the load's (StressRun), reported as usual.
      goOn();
      const stress = stressOptionsFrom(
        { ...loadFlags, event: eventId, 'run-id': runId, target: targets, log: join(workDir, 'responses.jsonl') },
        config,
      );
      progress = values.json || values.quiet ? undefined : progressPrinter(stderr as NodeJS.WriteStream);
      const onProgress = progress?.update;
      say(
        `load: ${stress.scenario.scenario}, ${stress.mode} loop, ${settings.loadMs / 1000} s; ${settings.schedule.length} fault(s) scheduled`,
      );
      const chaos = new ChaosRun({
        eventId,
        pool,
        stack,
        engineEnv,
        stress: {
          ...stress,
          logPath: join(workDir, 'responses.jsonl'),
          onStart: () => (loadBegan = true),
          ...(onProgress ? { onProgress } : {}),
        },
        schedule: settings.schedule,
        infraScript: values['infra-script'],
        recoveryTimeoutMs: settings.recoveryTimeoutMs,
        verify: {
          kafka: { brokers: config.kafkaBrokers, topic: config.reservationsTopic },
          ttlSlackMs: settings.ttlSlackMs,
          settleTimeoutMs: settings.settleTimeoutMs,
          topicTimeoutMs: 60_000,
          leases: redis.leases,
          log,
          onStatus: (m) => say(m),
        },
        onFault: (fault) => {
          progress?.done();
          say(formatFault(fault, false));
        },
        onStatus: (m) => {
          progress?.done();
          say(m);
        },
        signal: stop.signal,
      });
      const report = await chaos.run();
      progress?.done();
      stdout.write(
        values.json ? `${JSON.stringify({ ...report, work_dir: workDir })}\n` : `${formatChaosReport(report)}  files       ${workDir}\n`,
      );
      return chaosExitCode(report);
    } catch (error) {
      progress?.done();
      if (error instanceof StoppedBeforeLoad) {
        stderr.write(`chaos: ${error.message}\n`);
        if (values.json)
          stdout.write(`${JSON.stringify({ ok: false, event: values.event ?? provisioned, not_checked: [error.message] })}\n`);
        return EXIT.notChecked;
      }
      // An unknown event; or, when the load began, a token the ingress refuses or a --seat or
      // scenario the event cannot give: bad usage, in one line (exit 2).
      if (error instanceof UsageError) {
        stderr.write(`chaos: ${error.message}\n`);
        return EXIT.usage;
      }
      // Once the load began, ChaosRun reports what was done itself (a load or a verification that
      // failed included): what escapes it is a bug, left to main (exit 3 too, in one line).
      if (loadBegan) throw error;
      // An error before the load began (Postgres unreachable, engines that did not start, shards
      // not owned in time, a discovery the ingress failed): nothing was loaded, injected or judged.
      // Not judged (3) — chaos's 1 is a violation — in one line, and the report of a run that made
      // nothing, for --json readers too.
      const reason = `the run stopped before its load began: ${errorLine(error)}`;
      const event = values.event ?? provisioned ?? null;
      stderr.write(`chaos: not judged: ${errorLine(error)}\n`);
      const skipped = settings.schedule.map((f) => ({ kind: f.kind, planned_at_s: Math.round(f.atMs / 100) / 10, reason }));
      stdout.write(
        values.json
          ? `${JSON.stringify({ ok: false, event, faults: [], skipped, unmet: [reason], stress: null, disruptions: [], recovery_s: null, verify: null, work_dir: workDir })}\n`
          : `chaos on ${event ?? '(no event)'}: NOT JUDGED — ${reason}\n` +
              `  no load ran, no fault was injected (${skipped.length} planned), no verification was made\n  files       ${workDir}\n`,
      );
      return EXIT.notChecked;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await stack?.stopAll();
      process.off('exit', killOnExit);
      const closing = values['keep-event'] ? undefined : provisioned;
      if (closing !== undefined) await retireEvent(pool, () => redis.connected(), closing);
      redis.close();
      await pool.end();
    }
  },
};
