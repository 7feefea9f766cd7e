import t from 'tap';
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { chaosCommand, rebalanceIntervalFor } from '../../../src/cli/chaos-command.js';
import type { Command } from '../../../src/cli/commands.js';
import { stressCommand } from '../../../src/cli/stress-command.js';
import { verifyCommand } from '../../../src/cli/verify-command.js';
import { LEASE_TTL_MS_RANGE, loadConfig, type Config } from '../../../src/config.js';
import { silentLogger } from '../../../src/log.js';
import { NOWHERE_ENV } from '../../support/env.js';

/** Services nowhere: port 1 on loopback, where a connection is refused at once. */
const nowhere = loadConfig(NOWHERE_ENV, { hostname: 'h', pid: 1 });

/** Runs a command with argv and captures its exit code and output; none of these reach a service. */
async function run(
  command: Command,
  argv: string[],
  config: Config = loadConfig({}, { hostname: 'h', pid: 1 }),
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk.toString()));
  stderr.on('data', (chunk: Buffer) => err.push(chunk.toString()));
  const code = await command.run({ config, log: silentLogger, argv, stdout, stderr });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const commands = { stress: stressCommand, verify: verifyCommand, chaos: chaosCommand };

t.test('--help prints the usage and exits 0', async (t) => {
  for (const [name, command] of Object.entries(commands)) {
    const result = await run(command, ['--help']);
    t.equal(result.code, 0, name);
    t.match(result.stdout, new RegExp(`^Usage: sentinel ${name}`), name);
    t.equal(result.stderr, '', name);
  }
});

t.test('bad flags and bad values are usage errors: the reason, then the usage, exit 2', async (t) => {
  const cases: [Command, string[], RegExp][] = [
    [stressCommand, ['--no-such-flag'], /Unknown option '--no-such-flag'/],
    [stressCommand, [], /--event is required/],
    [stressCommand, ['--event', 'e', '--think', 'soon'], /--think/],
    // Found before any load, not after it (the report used to be lost to the error at the end).
    [
      stressCommand,
      ['--event', 'e', '--log', '/nonexistent-dir/run.jsonl'],
      /cannot write the response log \/nonexistent-dir\/run\.jsonl: ENOENT/,
    ],
    [verifyCommand, ['--event'], /argument missing/],
    [verifyCommand, [], /--event is required/],
    [verifyCommand, ['--event', 'e', '--settle', 'later'], /--settle must be a duration/],
    [chaosCommand, ['--layout', '8x20'], /--layout must be SECTIONSxROWSxSEATS/],
    [chaosCommand, ['--attach'], /--attach needs --event/],
    [chaosCommand, ['--duration', 'forever'], /--duration must be a duration/],
    // The event it will provision has no such seat: said before anything is provisioned or started.
    [
      chaosCommand,
      ['--scenario', 'hot-seat', '--seat', 'Z-1-1', '--layout', '2x3x4'],
      /--seat: the event has no seat Z-1-1 .*from A-1-1 to B-3-4/,
    ],
  ];
  for (const [command, argv, reason] of cases) {
    const result = await run(command, argv);
    t.equal(result.code, 2, argv.join(' '));
    t.match(result.stderr, reason, argv.join(' '));
    t.match(result.stderr, /\n\nUsage: sentinel /, `${argv.join(' ')}: the usage follows`);
    t.equal(result.stdout, '', argv.join(' '));
  }
});

/** A fake ingress on loopback answering every request with `status` and `body`; its URL. */
async function ingress(t: { teardown: (fn: () => Promise<void>) => void }, status: number, body: string): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/problem+json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('stress: an unknown event or a refused token is one line and exit 2, before any load', async (t) => {
  const problem = (slug: string, status: number, detail: string) =>
    JSON.stringify({ type: `https://sentinel.dev/problems/${slug}`, title: slug, status, detail });
  const cases: [number, string, RegExp][] = [
    [
      404,
      problem('event-not-found', 404, 'no event typo'),
      /^stress: no event typo at http:\/\/127\.0\.0\.1:\d+ \(GET \/v1\/events\/typo\/availability answered 404\)\n$/,
    ],
    [
      401,
      problem('unauthorized', 401, 'signature verification failed'),
      /^stress: http:\/\/127\.0\.0\.1:\d+ refused the customers' tokens .*SENTINEL_JWT_SECRET.*\n$/,
    ],
  ];
  for (const [status, body, message] of cases) {
    const target = await ingress(t, status, body);
    const result = await run(stressCommand, ['--event', 'typo', '--target', target, '--log', 'none', '--quiet']);
    t.equal(result.code, 2, `${status}: exit 2`);
    t.match(result.stderr, message, `${status}: one line naming what is wrong`);
    t.notMatch(result.stderr, /\n\s+at /, `${status}: no stack trace`);
    t.equal(result.stdout, '', `${status}: no report`);
  }
});

t.test('chaos --attach to a remote target refuses restarts of this machine’s services, before connecting anywhere', async (t) => {
  const attached = ['--attach', '--event', 'e', '--target', 'http://sentinel-ingress.sentinel.svc', '--allow-remote'];
  for (const faults of ['5s:redis-restart', '10s:postgres-restart,20s:kafka-restart', 'default']) {
    // Services nowhere: a run that went on would fail to connect, not exit 2.
    const result = await run(chaosCommand, [...attached, '--faults', faults], nowhere);
    t.equal(result.code, 2, `${faults}: exit 2`);
    t.match(
      result.stderr,
      /^--faults: [a-z, -]+ would restart this machine's services \(through hack\/infra\.sh\), not those of http:\/\/sentinel-ingress\.sentinel\.svc: .*--faults none/,
      `${faults}: why`,
    );
    t.match(result.stderr, /\n\nUsage: sentinel chaos/, `${faults}: the usage follows`);
    t.equal(result.stdout, '', `${faults}: no report`);
  }
});

t.test('chaos that cannot begin (no Postgres) is not judged: one line, a report of nothing done, exit 3', async (t) => {
  // Its files' directory, made before anything else: removed afterwards.
  const runId = `usage-test-${process.pid}`;
  t.teardown(() => rmSync(join(tmpdir(), `sentinel-${runId}`), { recursive: true, force: true }));
  // No --faults: attached, that is none — a remote target is no reason to refuse.
  const attached = ['--attach', '--event', 'e', '--target', 'http://sentinel-ingress.sentinel.svc', '--allow-remote', '--run-id', runId];
  const json = await run(chaosCommand, [...attached, '--json'], nowhere);
  t.equal(json.code, 3, 'exit 3, not 1 (a violation)');
  t.equal(json.stderr, 'chaos: not judged: connect ECONNREFUSED 127.0.0.1:1\n', 'one line, no stack');
  const report = JSON.parse(json.stdout) as Record<string, unknown>;
  t.same(report['skipped'], [], 'attached, no fault of its own was planned');
  t.match(report, {
    ok: false,
    event: 'e',
    faults: [],
    unmet: ['the run stopped before its load began: connect ECONNREFUSED 127.0.0.1:1'],
    stress: null,
    verify: null,
  });
  const local = await run(chaosCommand, ['--event', 'e', '--run-id', runId, '--faults', '5s:engine-kill,9s:redis-restart'], nowhere);
  t.equal(local.code, 3);
  t.equal(local.stderr, 'chaos: not judged: connect ECONNREFUSED 127.0.0.1:1\n');
  t.match(
    local.stdout,
    /^chaos on e: NOT JUDGED — the run stopped before its load began: connect ECONNREFUSED 127\.0\.0\.1:1\n {2}no load ran, no fault was injected \(2 planned\), no verification was made\n {2}files +\S+\n$/,
  );
});

t.test(
  'chaos --mode closed is a load of its own (its open loop’s default rate does not make it bad usage); --rate with it is',
  async (t) => {
    const runId = `usage-closed-${process.pid}`;
    t.teardown(() => rmSync(join(tmpdir(), `sentinel-${runId}`), { recursive: true, force: true }));
    const closed = await run(chaosCommand, ['--event', 'e', '--run-id', runId, '--mode', 'closed', '--faults', 'none'], nowhere);
    t.equal(closed.code, 3, 'its flags are accepted: it goes on, and stops at the missing Postgres');
    t.equal(closed.stderr, 'chaos: not judged: connect ECONNREFUSED 127.0.0.1:1\n');
    const both = await run(chaosCommand, ['--event', 'e', '--run-id', runId, '--mode', 'closed', '--rate', '50'], nowhere);
    t.equal(both.code, 2);
    t.match(both.stderr, /--rate is the arrival rate of --mode open/);
  },
);

t.test('chaos --lease-ttl outside what its engines take is bad usage, before anything starts', async (t) => {
  for (const ttl of ['499ms', '0.4s', '600001ms', '11m', '1h']) {
    // Services nowhere: a run that went on would fail to connect (exit 3), not exit 2.
    const result = await run(chaosCommand, ['--lease-ttl', ttl], nowhere);
    t.equal(result.code, 2, ttl);
    t.match(
      result.stderr,
      new RegExp(
        `^--lease-ttl must be from 500ms to 10m, the range of the engines' SENTINEL_LEASE_TTL_MS \\(got "${ttl}"\\)\\n\\nUsage: sentinel chaos`,
      ),
      ttl,
    );
    t.equal(result.stdout, '', `${ttl}: no report`);
  }
});

t.test('chaos: the engines it starts accept the lease TTL and the membership round it gives them', async (t) => {
  for (const ttlMs of [LEASE_TTL_MS_RANGE.min, 3000, 60_000, 360_001, LEASE_TTL_MS_RANGE.max]) {
    const env = { SENTINEL_LEASE_TTL_MS: String(ttlMs), SENTINEL_REBALANCE_INTERVAL_MS: String(rebalanceIntervalFor(ttlMs)) };
    t.doesNotThrow(() => loadConfig(env), JSON.stringify(env));
  }
  t.equal(rebalanceIntervalFor(3000), 500, 'a sixth of the TTL');
  t.equal(rebalanceIntervalFor(500), 100, 'at least 100 ms');
});
