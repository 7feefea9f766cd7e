/**
 * `sentinel engine` and `sentinel migrate` parse their arguments before they connect anywhere:
 * `--help` prints the usage (exit 0), an unknown flag or a positional argument is a usage error
 * (exit 2). Each case runs the real CLI in a child process whose every service URL points at port 1
 * on loopback, so a command that went on to connect would fail (or be killed), never touch a real
 * database, and never claim shards.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { NOWHERE_CLI_ENV } from '../../support/env.js';

const CLI = fileURLToPath(new URL('../../../bin/sentinel.js', import.meta.url));

const NOWHERE = NOWHERE_CLI_ENV;

/** Longest a case may take: parsing is immediate, so a child still running this long went on to connect. */
const DEADLINE_MS = 20_000;

async function sentinel(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }> {
  const child = spawn(process.execPath, [CLI, ...argv], { env: { ...process.env, ...NOWHERE }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, DEADLINE_MS);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr, killed };
}

t.test('--help and -h print the usage on stdout and exit 0, without connecting', async (t) => {
  const cases: [string[], RegExp][] = [
    [['engine', '--help'], /--no-relay/],
    [['engine', '-h'], /--no-relay/],
    [['engine', '--no-relay', '--help'], /--no-relay/],
    [['migrate', '--help'], /migrations/],
  ];
  for (const [argv, mentions] of cases) {
    const name = argv.join(' ');
    const result = await sentinel(argv);
    t.notOk(result.killed, `${name}: returns at once`);
    t.equal(result.code, 0, `${name}: exit 0`);
    t.match(result.stdout, new RegExp(`^Usage: sentinel ${argv[0]}`), `${name}: the usage`);
    t.match(result.stdout, mentions, `${name}: what it does`);
    t.match(result.stdout, /environment variables[\s\S]*README\.md,\s+"Configuration"/, `${name}: where its configuration comes from`);
    t.equal(result.stderr, '', `${name}: nothing on stderr`);
  }
});

t.test('an unknown flag or a positional argument is a usage error: the reason, then the usage, exit 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [['engine', '--no-rely'], /^Unknown option '--no-rely'/],
    [['engine', 'now'], /^Unexpected argument 'now'/],
    [['migrate', '--dry-run'], /^Unknown option '--dry-run'/],
    [['migrate', 'up'], /^Unexpected argument 'up'/],
  ];
  for (const [argv, reason] of cases) {
    const name = argv.join(' ');
    const result = await sentinel(argv);
    t.notOk(result.killed, `${name}: returns at once`);
    t.equal(result.code, 2, `${name}: exit 2`);
    t.match(result.stderr, reason, `${name}: names what is wrong`);
    t.match(result.stderr, new RegExp(`\\n\\nUsage: sentinel ${argv[0]}`), `${name}: the usage follows`);
    t.equal(result.stdout, '', `${name}: nothing on stdout`);
  }
});
