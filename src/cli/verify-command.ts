/**
 * `sentinel verify --event ID [--log run.jsonl]…`: checks every invariant over Postgres, the Kafka
 * topic and stress response logs. Exit 0 when all hold, 1 on any violation, 2 on bad usage, 3 when
 * a check that was asked for could not be made (an error that stopped the checks too: main.ts,
 * `errorExit`).
 */
import { createPgPool } from '../adapters/postgres/pool.js';
import { parseDurationMs, UsageError } from '../jobs/options.js';
import { formatVerifyReport } from '../jobs/verify/format.js';
import { EXIT, PrunedEventError, UnknownEventError, verifyEvent, verifyExitCode } from '../jobs/verify/verify.js';
import type { Command } from './commands.js';
import { checkFlags, parseFlags } from './flags.js';
import { jobRedis } from '../jobs/job-redis.js';

const HELP = `Usage: sentinel verify --event ID [--log PATH]... [options]

Checks the invariants of the architecture for one event:
  1 no seat held or sold twice; sold ≤ capacity     2 every 201 a client saw is in Postgres, and
  3 no live hold past its TTL (+ slack)               nothing a client was refused (409/422) was
  4 per-customer limits held                          done; every confirmed reservation is on the
                                                      Kafka topic (deduped by key), nothing unknown
Reads DATABASE_URL, KAFKA_BROKERS and SENTINEL_RESERVATIONS_TOPIC. Seats and limits are checked
over every hold the event ever had, against the event's current limit (one lowered during the sale
also flags what was held before). Exit codes:
  0  every invariant holds
  1  a violation (whatever else could not be checked)
  2  bad usage (a flag or an environment variable), an unknown event, or a --log that cannot be read
  3  no violation, but a check could not be made: a --log is empty, holds no record of the
     event or a line that is not a response record, or its refusals carry no Idempotency-Key;
     the topic could not be read, or reservations missing from it have outbox rows only for
     other topics (engines with another SENTINEL_RESERVATIONS_TOPIC); or live holds are past
     their TTL on shards no engine serves; or an error stopped the checks (Postgres could not
     be reached, say: one line on stderr, with the stack at LOG_LEVEL=debug)

  --event ID          the event (required)
  --log PATH          a stress response log to replay, repeatable
  --no-topic          skip the Kafka checks
  --ttl-slack D       how long past its TTL a hold may still be live (default 2s)
  --settle D          wait this long for the relay to publish the outbox before reading the topic,
                      and again for reservations not published yet when it was read (default 60s)
  --topic-timeout D   reading the topic may take this long (default 60s)
  --json              print {"ok", "violations", "not_checked", "counts", "checks"} instead of the summary
`;

const FLAGS = {
  event: { type: 'string' },
  log: { type: 'string', multiple: true, default: [] as string[] },
  'no-topic': { type: 'boolean', default: false },
  'ttl-slack': { type: 'string', default: '2s' },
  settle: { type: 'string', default: '60s' },
  'topic-timeout': { type: 'string', default: '60s' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

export const verifyCommand: Command = {
  summary: 'check the invariants over Postgres, the Kafka topic and stress response logs',
  // An error that stops the checks (Postgres unreachable, say) is not a violation: not judged.
  errorExit: EXIT.notChecked,
  async run({ config, log, argv, stdout, stderr }) {
    const parsed = parseFlags({ argv, stdout, stderr }, FLAGS, HELP);
    if ('exit' in parsed) return parsed.exit;
    const { values } = parsed;
    const checked = checkFlags({ stderr }, HELP, () => {
      if (!values.event) throw new UsageError('--event is required');
      return {
        eventId: values.event,
        ttlSlackMs: parseDurationMs(values['ttl-slack'], 'ttl-slack'),
        settleTimeoutMs: parseDurationMs(values.settle, 'settle'),
        topicTimeoutMs: parseDurationMs(values['topic-timeout'], 'topic-timeout'),
      };
    });
    if ('exit' in checked) return checked.exit;
    const { eventId, ttlSlackMs, settleTimeoutMs, topicTimeoutMs } = checked.value;
    // Dependency restarts are expected here: their connection errors are not news.
    const pool = createPgPool({
      url: config.databaseUrl,
      max: 4,
      log: log.child({}, { level: 'error' }),
      applicationName: 'sentinel-verify',
    });
    const redis = jobRedis(config.redisUrl, log.child({}, { level: 'error' }));
    try {
      const report = await verifyEvent({
        eventId,
        pool,
        logs: values.log,
        kafka: values['no-topic'] ? undefined : { brokers: config.kafkaBrokers, topic: config.reservationsTopic },
        ttlSlackMs,
        settleTimeoutMs,
        topicTimeoutMs,
        leases: redis.leases,
        log,
        ...(values.json ? {} : { onStatus: (message: string) => stderr.write(`verify: ${message}\n`) }),
      });
      stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatVerifyReport(report));
      return verifyExitCode(report);
    } catch (error) {
      if (error instanceof UnknownEventError) {
        stderr.write(`verify: ${error.message}\n`);
        return EXIT.usage;
      }
      if (error instanceof PrunedEventError) {
        stderr.write(`verify: ${error.message}\n`);
        return EXIT.notChecked;
      }
      // A --log that cannot be opened.
      if (error instanceof UsageError) {
        stderr.write(`verify: ${error.message}\n\n${HELP}`);
        return EXIT.usage;
      }
      throw error;
    } finally {
      redis.close();
      await pool.end();
    }
  },
};
