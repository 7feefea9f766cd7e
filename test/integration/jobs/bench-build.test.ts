/**
 * What the benchmarks run (bench/build.ts): the compiled build, as the container image runs it.
 * Compiles src/ with `tsc -p tsconfig.build.json`, then serves from dist/ — an engine and an
 * ingress that sell a seat through the REST API, the seed design that sells one seat exactly once
 * under a crowd, and the no-op ceiling — all against the real local infrastructure.
 */
import type { ChildProcess } from 'node:child_process';
import t from 'tap';
import { compileForBench, startServer } from '../../../bench/build.js';
import { mintToken } from '../../../src/ingress/auth.js';
import { LocalStack } from '../../../src/jobs/local-stack.js';
import { waitForShards } from '../../../src/jobs/wait.js';
import { ensureSeedSchema, provisionSeedEvent, seedOutcome } from '../../../src/seed/seed-app.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { freePort, provisionTestEvent, testDatabase, testLayout, waitFor } from '../../support/stack.js';

const config = testConfig();
const pool = await testDatabase();
t.teardown(() => pool.end());
const build = compileForBench();
const token = (subject: string) =>
  mintToken({ secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience, subject, ttlS: 600 });

const children: ChildProcess[] = [];
process.once('exit', () => children.forEach((c) => c.kill('SIGKILL')));
t.teardown(() => children.forEach((c) => c.kill('SIGTERM')));

/** Starts `serve.js <which>` from the build and waits until it answers /readyz. */
async function baseline(which: 'seed' | 'noop'): Promise<string> {
  const port = await freePort();
  children.push(startServer(which, build.baseline, [which, '--port', String(port)], { say: (line) => process.stderr.write(`${line}\n`) }));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`the ${which} server`, async () => (await fetch(`${url}/readyz`)).ok, 30_000);
  return url;
}

t.test('an engine and an ingress from dist/ sell a seat', async (t) => {
  const spec = await provisionTestEvent(pool, { layout: testLayout({ sections: 1, rows: 1, seats: 4 }), shardCount: 1 });
  const stack = new LocalStack({ env: { LOG_LEVEL: 'warn' }, cli: build.sentinel });
  t.teardown(() => stack.stopAll());
  await stack.startEngine(spec.eventId);
  const ingress = await stack.startIngress();
  await waitForShards(pool, spec.eventId, 30_000);
  t.match(
    stack.processes.map((p) => p.child.spawnargs.join(' ')).join('\n'),
    /dist\/cli\/main\.js engine[\s\S]*dist\/cli\/main\.js ingress/,
  );
  const response = await fetch(`${ingress.url}/v1/events/${spec.eventId}/seats/A-1-1/reserve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token('compiled-buyer')}`, 'idempotency-key': uniqueName('compiled') },
  });
  t.equal(response.status, 201, await response.text());
});

t.test('the seed design from dist/ sells a seat once to a crowd of 40', async (t) => {
  const url = await baseline('seed');
  const eventId = uniqueName('seed-build');
  await ensureSeedSchema(pool);
  await provisionSeedEvent(pool, eventId, ['A-1-1']);
  const statuses = await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const response = await fetch(`${url}/v1/events/${eventId}/seats/A-1-1/reserve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token(`seed-buyer-${i}`)}` },
      });
      await response.arrayBuffer();
      return response.status;
    }),
  );
  t.equal(statuses.filter((s) => s === 201).length, 1, 'one buyer gets the seat');
  t.equal(statuses.filter((s) => s === 409).length, 39, 'everyone else a 409');
  t.same(await seedOutcome(pool, eventId), { reservations: 1, doubleSold: 0 });
});

t.test('the no-op ceiling from dist/ answers 201 at once', async (t) => {
  const url = await baseline('noop');
  const response = await fetch(`${url}/v1/events/any/seats/A-1-1/reserve`, { method: 'POST' });
  t.equal(response.status, 201);
  t.same(await response.json(), {});
});
