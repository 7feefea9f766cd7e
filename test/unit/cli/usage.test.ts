import t from 'tap';
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
  ];
  for (const [command, argv, reason] of cases) {
    const result = await run(command, argv);
    t.equal(result.code, 2, argv.join(' '));
    t.match(result.stderr, reason, argv.join(' '));
    t.match(result.stderr, /\n\nUsage: sentinel /, `${argv.join(' ')}: the usage follows`);
    t.equal(result.stdout, '', argv.join(' '));
  }
});
