/**
 * `sentinel stress`: drives an event through the REST API with many customers (see
 * src/jobs/stress), shows a live progress line on stderr, and ends with a summary (or `--json`)
 * and a response log for `sentinel verify`.
 */
import { UsageError } from '../jobs/options.js';
import { formatStressReport } from '../jobs/stress/format.js';
import { progressPrinter, STRESS_FLAGS, STRESS_FLAGS_HELP, stressOptionsFrom } from '../jobs/stress/cli.js';
import { StressRun } from '../jobs/stress/stress.js';
import type { Command } from './commands.js';
import { checkFlags, parseFlags } from './flags.js';

const HELP = `Usage: sentinel stress --event ID [options]

Buys through the REST API the way a crowd does, bounded in buyers and time, then prints a summary
(requests, throughput, latency p50/p90/p99/max, statuses, seats sold, errors) and writes a response
log for \`sentinel verify\`. Ctrl-C stops early and still reports. Targets must be loopback unless
--allow-remote. Customers' tokens are signed with SENTINEL_JWT_SECRET/ISSUER/AUDIENCE.

Exit: 0 the load ran (whatever it was answered); 2 bad usage, found before any load: a bad flag,
an unknown event, a token the ingress refuses, a --seat or --scenario the event cannot give;
1 anything else (e.g. the ingress unreachable or failing).

${STRESS_FLAGS_HELP}Output:
  --json                  print one JSON object (scenario, requests, status, throughput_rps,
                          latency_ms {p50,p90,p99,max}, duration_s, cut: attempts the run cut
                          itself on a stop, counted nowhere else, …) instead of the summary
  --quiet                 no progress line
`;

const FLAGS = {
  ...STRESS_FLAGS,
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

export const stressCommand: Command = {
  summary: 'load an event through the REST API (hot-seat, flash-sale, best-available, mixed)',
  async run({ config, argv, stdout, stderr }) {
    const parsed = parseFlags({ argv, stdout, stderr }, FLAGS, HELP);
    if ('exit' in parsed) return parsed.exit;
    const { values } = parsed;
    const checked = checkFlags({ stderr }, HELP, () => stressOptionsFrom(values, config));
    if ('exit' in checked) return checked.exit;
    const options = checked.value;
    const progress = values.quiet ? undefined : progressPrinter(stderr as NodeJS.WriteStream);
    const stop = new AbortController();
    // Before any load: a response log that cannot be written is a usage error (exit 2).
    const created = checkFlags(
      { stderr },
      HELP,
      () => new StressRun({ ...options, signal: stop.signal, ...(progress ? { onProgress: progress.update } : {}) }),
    );
    if ('exit' in created) return created.exit;
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const report = await created.value.run();
      progress?.done();
      stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatStressReport(report));
      return 0;
    } catch (error) {
      // Found at discovery, before any load: an unknown event, a token the ingress refuses, a --seat
      // or scenario the event cannot give. One line, exit 2; anything else propagates (exit 1).
      if (!(error instanceof UsageError)) throw error;
      progress?.done();
      stderr.write(`stress: ${error.message}\n`);
      return 2;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
