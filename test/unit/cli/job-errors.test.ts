/**
 * `verify` and `chaos` keep exit 1 for a violation: an error that keeps them from judging — here
 * Postgres unreachable — exits 3 ("could not be judged") in one line, its stack only at
 * LOG_LEVEL=debug; a bad environment variable is bad usage (2). Other commands still exit 1 on an
 * error. Each case runs the real CLI in a child process whose every service URL points at port 1
 * on loopback, where a connection is refused at once.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { NOWHERE_CLI_ENV } from '../../support/env.js';

const CLI = fileURLToPath(new URL('../../../bin/sentinel.js', import.meta.url));

const NOWHERE = NOWHERE_CLI_ENV;

/** Longest a case may take: every connection is refused at once. */
const DEADLINE_MS = 30_000;

async function sentinel(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...argv], { env: { ...process.env, ...NOWHERE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

t.test('verify with Postgres unreachable: not judged, exit 3, one line', async (t) => {
  const result = await sentinel(['verify', '--event', 'e']);
  t.equal(result.code, 3, 'exit 3, not 1 (a violation)');
  t.equal(result.stderr, 'verify: not judged: connect ECONNREFUSED 127.0.0.1:1 (LOG_LEVEL=debug prints the stack)\n');
  t.equal(result.stdout, '', 'no report');
});

t.test('verify with Postgres unreachable at LOG_LEVEL=debug: the stack too', async (t) => {
  const result = await sentinel(['verify', '--event', 'e', '--no-topic'], { LOG_LEVEL: 'debug' });
  t.equal(result.code, 3);
  t.match(result.stderr, /^verify: not judged: connect ECONNREFUSED 127\.0\.0\.1:1\nError: connect ECONNREFUSED 127\.0\.0\.1:1\n\s+at /);
});

t.test('verify with a bad environment variable: bad usage, exit 2', async (t) => {
  const result = await sentinel(['verify', '--event', 'e'], { DATABASE_URL: 'nope' });
  t.equal(result.code, 2);
  t.equal(result.stderr, 'sentinel: config_invalid: DATABASE_URL is not a URL: "nope"\n');
});

t.test('verify and chaos with a bad LOG_LEVEL: bad usage, exit 2, one line naming it (not pino’s stack, exit 3)', async (t) => {
  const message = 'sentinel: config_invalid: LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "inof"\n';
  for (const argv of [
    ['verify', '--event', 'e'],
    ['chaos', '--attach', '--event', 'e'],
  ]) {
    const name = argv.join(' ');
    const result = await sentinel(argv, { LOG_LEVEL: 'inof' });
    t.equal(result.code, 2, name);
    t.equal(result.stderr, message, name);
  }
  // Any other command: one line too (exit 1).
  const token = await sentinel(['token', '--sub', 'alice'], { LOG_LEVEL: 'inof' });
  t.equal(token.code, 1, 'token');
  t.equal(token.stderr, message, 'token');
  t.equal(token.stdout, '', 'token: no token');
});

t.test('chaos with Postgres unreachable: not judged, exit 3, one line and its report', async (t) => {
  const runId = `job-errors-test-${process.pid}`;
  t.teardown(() => rmSync(join(tmpdir(), `sentinel-${runId}`), { recursive: true, force: true }));
  const result = await sentinel(['chaos', '--attach', '--event', 'e', '--run-id', runId, '--json']);
  t.equal(result.code, 3);
  t.equal(result.stderr, 'chaos: not judged: connect ECONNREFUSED 127.0.0.1:1\n');
  t.match(JSON.parse(result.stdout), { ok: false, event: 'e', faults: [], verify: null });
});

t.test('other commands still exit 1 on such an error', async (t) => {
  const result = await sentinel(['migrate']);
  t.equal(result.code, 1);
  t.match(result.stderr, /^sentinel: postgres_unavailable: .*ECONNREFUSED 127\.0\.0\.1:1\n$/);
});
