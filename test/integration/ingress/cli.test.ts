/** `sentinel token` and `sentinel ingress` as a pod would run them: real process, real signals. */
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { createTokenVerifier } from '../../../src/ingress/auth.js';
import { freePort, waitFor } from '../../support/stack.js';
import { config } from './harness.js';

const CLI = fileURLToPath(new URL('../../../bin/sentinel.js', import.meta.url));
const run = promisify(execFile);

t.test('sentinel token mints a token the ingress accepts', async (t) => {
  const { stdout } = await run(process.execPath, [CLI, 'token', '--sub', 'dora', '--ttl', '10m', '--json']);
  const minted = JSON.parse(stdout) as { token: string; sub: string; expiresAt: string };
  t.equal(minted.sub, 'dora');
  t.ok(Math.abs(Date.parse(minted.expiresAt) - Date.now() - 600_000) < 10_000);
  const verifier = createTokenVerifier({ secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience });
  t.same(await verifier.verify(minted.token), { customer: 'dora' });
  const bare = await run(process.execPath, [CLI, 'token', '--sub', 'dora']);
  t.match(bare.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  await t.rejects(run(process.execPath, [CLI, 'token', '--ttl', 'soon']), { code: 2 });
});

t.test('sentinel ingress serves until SIGTERM, then stops cleanly', async (t) => {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'ingress', '--port', String(port), '--host', '127.0.0.1'], {
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitFor('ingress ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 30_000);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { 'x-request-id': 'cli-probe-1' } });
  t.equal(health.status, 200);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit code 0');
  t.match(logs, /"msg":"Ingress listening"/);
  t.match(logs, /"requestId":"cli-probe-1".*"msg":"Handled request"/, 'request logs carry the request id');
  t.match(logs, /"msg":"Ingress stopped"/);
});
