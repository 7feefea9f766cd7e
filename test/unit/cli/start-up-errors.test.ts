/**
 * The long-running roles (engine, ingress, operator) that cannot start say why in one line naming
 * the setting — not an errno or ioredis stack: a port taken, a port past 65535, an unreachable
 * Redis. An unreachable NATS is waited for (a pod may start before NATS does), and said once. Each
 * case runs the real CLI in a child process; Redis and NATS are fakes on loopback where a case
 * needs them reached (test/unit/cli/fake-services.ts), port 1 on loopback where it needs them not.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { NATS_WAIT_NOTICE_MS } from '../../../src/adapters/nats/connection.js';
import { ingressCommand } from '../../../src/cli/ingress-command.js';
import { loadConfig } from '../../../src/config.js';
import { silentLogger } from '../../../src/log.js';
import { NOWHERE_CLI_ENV } from '../../support/env.js';
import { fakeNats, fakeRedis, type FakeService } from './fake-services.js';

const CLI = fileURLToPath(new URL('../../../bin/sentinel.js', import.meta.url));

const NOWHERE = {
  ...NOWHERE_CLI_ENV,
  NODE_ENV: 'development',
};

/** Longest a case may take: every failure here comes within seconds of the start. */
const DEADLINE_MS = 30_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  killed: boolean;
}

/**
 * Runs `sentinel argv` until it exits — or, when `until` is given, until its stdout matches it
 * (then it is killed: `killed` says it was still running) — or until the deadline.
 */
/** Runs the CLI; with `until`, kills it `lingerMs` after its stdout first matches (what it says meanwhile is kept). */
async function sentinel(argv: string[], env: Record<string, string> = {}, until?: RegExp, lingerMs = 0): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...argv], { env: { ...process.env, ...NOWHERE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let killed = false;
  const kill = () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    killed = true;
    child.kill('SIGKILL');
  };
  let lingering: NodeJS.Timeout | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (lingering === undefined && until?.test(stdout)) lingering = setTimeout(kill, lingerMs);
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(kill, DEADLINE_MS);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  clearTimeout(lingering);
  return { code, stdout, stderr, killed };
}

/** What a test gives to close what it opened. */
interface Teardown {
  teardown(fn: () => Promise<void> | void): void;
}

/** A port another process holds on the unspecified address — where the roles listen by default. */
async function takenPort(t: Teardown): Promise<number> {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  return (holder.address() as AddressInfo).port;
}

async function service(t: Teardown, start: () => Promise<FakeService>): Promise<string> {
  const fake = await start();
  t.teardown(() => fake.close());
  return fake.url;
}

/** `sentinel: config_invalid: <what> cannot listen on <address>:<port> (set by <setting>): … (EADDRINUSE)`, alone. */
function inUse(what: string, port: number, setting: string): RegExp {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(
    `^sentinel: config_invalid: ${escape(what)} cannot listen on \\S+:${port} \\(set by ${escape(setting)}\\): the address is already in use \\(EADDRINUSE\\)\\n$`,
  );
}

t.test('engine: its probe port taken is one line naming SENTINEL_HTTP_PORT, exit 1', async (t) => {
  const port = await takenPort(t);
  const env = { REDIS_URL: await service(t, fakeRedis), NATS_URL: await service(t, fakeNats), SENTINEL_HTTP_PORT: String(port) };
  const result = await sentinel(['engine', '--no-relay'], env);
  t.notOk(result.killed, 'it exits by itself');
  t.equal(result.code, 1);
  t.match(result.stderr, inUse("the engine's health and metrics server", port, 'SENTINEL_HTTP_PORT'));
});

t.test('ingress: its port taken is one line naming the flag or the variable that set it, exit 1', async (t) => {
  const port = await takenPort(t);
  const env = { REDIS_URL: await service(t, fakeRedis), NATS_URL: await service(t, fakeNats) };
  const flag = await sentinel(['ingress', '--port', String(port)], env);
  t.notOk(flag.killed, '--port: it exits by itself');
  t.equal(flag.code, 1, '--port');
  t.match(flag.stderr, inUse('the ingress', port, '--port'), '--port');
  const variable = await sentinel(['ingress'], { ...env, SENTINEL_INGRESS_PORT: String(port) });
  t.equal(variable.code, 1, 'SENTINEL_INGRESS_PORT');
  t.match(variable.stderr, inUse('the ingress', port, 'SENTINEL_INGRESS_PORT'), 'SENTINEL_INGRESS_PORT');
});

t.test('operator: its probe port taken is one line naming SENTINEL_HTTP_PORT, exit 1', async (t) => {
  const port = await takenPort(t);
  // A kubeconfig is read first; nothing is asked of its API server before the probe port listens.
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-start-up-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]',
      'users: [{name: nobody, user: {token: none}}]',
      'contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]',
      'current-context: nowhere',
      '',
    ].join('\n'),
  );
  for (const migrate of ['--migrate', '--no-migrate']) {
    const result = await sentinel(['operator', `--kubeconfig=${kubeconfig}`, migrate], { SENTINEL_HTTP_PORT: String(port) });
    t.notOk(result.killed, `${migrate}: it exits by itself`);
    t.equal(result.code, 1, migrate);
    t.match(result.stderr, inUse("the operator's health and metrics server", port, 'SENTINEL_HTTP_PORT'), migrate);
  }
});

t.test('ingress --port past 65535 (or not a port) is a usage error before it connects anywhere, exit 2', async (t) => {
  // In this process: the flag is checked before anything connects (services nowhere, all the same).
  const config = loadConfig(NOWHERE, { hostname: 'h', pid: 1 });
  for (const port of ['70000', '65536', '-1', '8o8o', '']) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await ingressCommand.run({ config, log: silentLogger, argv: [`--port=${port}`], stdout, stderr });
    t.equal(code, 2, JSON.stringify(port));
    t.match(
      err,
      new RegExp(`^--port must be a port, an integer in \\[0, 65535\\], got "${port}"\\n\\nUsage: sentinel ingress`),
      JSON.stringify(port),
    );
  }
});

t.test('Redis unreachable at start: one line naming Redis and its URL, without credentials, exit 1', async (t) => {
  for (const role of [['engine', '--no-relay'], ['ingress']]) {
    const name = role.join(' ');
    const result = await sentinel(role, { REDIS_URL: 'redis://sentinel:hunter2@127.0.0.1:1/0' });
    t.notOk(result.killed, `${name}: it exits by itself`);
    t.equal(result.code, 1, name);
    t.equal(
      result.stderr,
      'sentinel: redis_unavailable: cannot connect to Redis at redis://127.0.0.1:1/0 (REDIS_URL): connect ECONNREFUSED 127.0.0.1:1\n',
      `${name}: one line, no stack, no password`,
    );
  }
});

t.test('NATS unreachable at start: the engine says once that it waits for it, and waits', async (t) => {
  const result = await sentinel(
    ['engine', '--no-relay'],
    { REDIS_URL: await service(t, fakeRedis), NATS_URL: 'nats://sentinel:hunter2@127.0.0.1:1', LOG_LEVEL: 'warn' },
    /Waiting for NATS/,
    // Long enough for the notice to come again if it were repeated at its interval.
    2.5 * NATS_WAIT_NOTICE_MS,
  );
  t.ok(result.killed, 'still waiting (killed here), not exited');
  const lines = result.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const waiting = lines.filter((line) => /Waiting for NATS/.test(String(line['msg'])));
  t.equal(waiting.length, 1, 'said once');
  t.match(waiting[0], { level: 'warn', msg: /^Waiting for NATS at nats:\/\/127\.0\.0\.1:1 \(NATS_URL\)/ });
  t.notMatch(result.stdout, /hunter2/, 'no password');
  t.equal(result.stderr, '', 'no error');
});
