/** `sentinel token` and `sentinel ingress` as a pod would run them: real process, real signals. */
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { createTokenVerifier } from '../../../src/ingress/auth.js';
import { freePort, sleep, waitFor } from '../../support/stack.js';
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
  await t.rejects(run(process.execPath, [CLI, 'token', '--sub', 'tab\there']), {
    code: 2,
    stderr: /--sub must be 1-256 characters, none a control character/,
  });
});

/** `sentinel ingress` on a free loopback port as a real process, its logs collected, killed at teardown. */
async function spawnIngress(t: Test, extraArgs: readonly string[] = []) {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'ingress', '--port', String(port), '--host', '127.0.0.1', ...extraArgs], {
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { logs: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.logs += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output.logs += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { port, child, output, exited };
}

t.test('sentinel ingress serves until SIGTERM, then stops cleanly', async (t) => {
  const { port, child, output, exited } = await spawnIngress(t);
  await waitFor('ingress ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 30_000);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { 'x-request-id': 'cli-probe-1' } });
  t.equal(health.status, 200);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit code 0');
  t.match(output.logs, /"msg":"Ingress listening"/);
  t.match(output.logs, /"requestId":"cli-probe-1".*"msg":"Handled request"/, 'request logs carry the request id');
  t.match(output.logs, /"msg":"Ingress stopped"/);
});

t.test('sentinel ingress --workers 2: one port, summed metrics, a dead worker replaced, a clean stop', async (t) => {
  const { port, child, output, exited } = await spawnIngress(t, ['--workers', '2']);
  const url = `http://127.0.0.1:${port}`;
  const workerPids = () => [...output.logs.matchAll(/"pid":(\d+)[^\n]*"msg":"Ingress listening"/g)].map((m) => Number(m[1]));
  await waitFor('two workers listening', async () => workerPids().length === 2 && (await fetch(`${url}/readyz`)).ok, 30_000);
  t.equal(new Set(workerPids()).size, 2, 'two worker processes');
  t.notOk(workerPids().includes(child.pid!), 'the supervisor itself serves nothing');

  // Fresh connections are spread over the workers; /metrics counts every request, whichever worker answers.
  const probes = 20;
  for (let i = 0; i < probes; i++) t.equal((await fetch(`${url}/healthz`, { headers: { connection: 'close' } })).status, 200);
  const healthRequests = async () => {
    const text = await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text();
    const line = text.split('\n').find((l) => l.startsWith('sentinel_ingress_http_requests_total{') && l.includes('route="/healthz"'));
    return Number(line?.split(' ').pop());
  };
  t.equal(await healthRequests(), probes, 'the scrape sums both workers');
  const served = [...output.logs.matchAll(/"pid":(\d+)[^\n]*"route":"\/healthz"[^\n]*"msg":"Handled request"/g)].map((m) => Number(m[1]));
  t.equal(new Set(served).size, 2, 'both workers answered requests');

  const [victim] = workerPids();
  process.kill(victim!, 'SIGKILL');
  // (A connection handed to the victim before the supervisor knew it dead would be reset.)
  await waitFor('the supervisor saw it die', async () => output.logs.includes('"msg":"Ingress worker died; starting another"'), 10_000);
  // Scrapes while the replacement starts: the sum over the live worker, never a failure for
  // the one that is still starting (it has nothing to count yet).
  const scrapes: number[] = [];
  for (const until = Date.now() + 30_000; workerPids().length < 3 && Date.now() < until; await sleep(100)) {
    scrapes.push((await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).status);
  }
  t.equal(workerPids().length, 3, 'a replacement worker');
  t.ok(scrapes.length > 0, `${scrapes.length} scrapes while it started`);
  t.same([...new Set(scrapes)], [200], 'all of them answered');
  t.match(output.logs, /"msg":"Ingress worker died; starting another"/);
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'still serving');

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'the supervisor exits 0 after its workers stopped');
  t.equal((output.logs.match(/"msg":"Ingress stopped"/g) ?? []).length, 2, 'both live workers stopped gracefully');
  for (const pid of workerPids()) t.throws(() => process.kill(pid, 0), 'no worker left behind');
});

t.test(
  'sentinel ingress --workers 2: a worker that dies while its scrape is being gathered does not take the supervisor down',
  async (t) => {
    const { port, child, output, exited } = await spawnIngress(t, ['--workers', '2']);
    const url = `http://127.0.0.1:${port}`;
    const workerPids = () => [...output.logs.matchAll(/"pid":(\d+)[^\n]*"msg":"Ingress listening"/g)].map((m) => Number(m[1]));
    await waitFor('two workers listening', async () => workerPids().length === 2 && (await fetch(`${url}/readyz`)).ok, 30_000);
    const [asker, silent] = workerPids() as [number, number];
    // One worker cannot answer the supervisor's collection: a scrape waits for it (up to 5 s).
    process.kill(silent, 'SIGSTOP');
    t.teardown(() => {
      try {
        process.kill(silent, 'SIGCONT');
      } catch {
        // gone already
      }
    });
    // Scrapes on fresh connections, spread over both workers: those reaching `asker` ask the supervisor.
    const scrapes = Array.from({ length: 4 }, () =>
      fetch(`${url}/metrics`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) }).catch(() => undefined),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    process.kill(asker, 'SIGKILL'); // dies while the supervisor gathers its scrape
    await new Promise((resolve) => setTimeout(resolve, 6000)); // the collection gives up and answers the dead asker
    process.kill(silent, 'SIGCONT');
    await Promise.all(scrapes);
    t.equal(child.exitCode, null, 'the supervisor is still running');
    await waitFor('a replacement worker', async () => workerPids().length === 3, 30_000);
    t.equal((await fetch(`${url}/healthz`, { headers: { connection: 'close' } })).status, 200, 'still serving');
    child.kill('SIGTERM');
    t.equal(await exited, 0, 'and it stops cleanly');
  },
);
