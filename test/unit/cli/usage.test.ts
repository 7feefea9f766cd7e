import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { chaosCommand } from '../../../src/cli/chaos-command.js';
import type { Command } from '../../../src/cli/commands.js';
import { stressCommand } from '../../../src/cli/stress-command.js';
import { verifyCommand } from '../../../src/cli/verify-command.js';
import { loadConfig } from '../../../src/config.js';
import { silentLogger } from '../../../src/log.js';

/** Runs a command with argv and captures its exit code and output; none of these reach a service. */
async function run(command: Command, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk.toString()));
  stderr.on('data', (chunk: Buffer) => err.push(chunk.toString()));
  const code = await command.run({ config: loadConfig({}, { hostname: 'h', pid: 1 }), log: silentLogger, argv, stdout, stderr });
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
