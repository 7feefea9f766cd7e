/**
 * Two operators, as two processes started the way their pods would be: one leads, the other
 * stands by and never acts; kill the leader and the standby takes the Lease over and reconciles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import t from 'tap';
import { freePort, testDatabase } from '../../support/stack.js';
import { cluster, createTicketEvent, condition, ROOT, testNamespace, waitFor, waitForStatus, type Cluster } from './harness.js';

interface OperatorProcess {
  readonly identity: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly logs: string[];
  readonly exited: Promise<number | null>;
  metric(name: string): Promise<number>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

async function startOperatorProcess(namespace: string, identity: string): Promise<OperatorProcess> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      'bin/sentinel.js',
      'operator',
      `--namespace=${namespace}`,
      `--lease-namespace=${namespace}`,
      `--identity=${identity}`,
      '--lease-duration=3s',
      '--renew-deadline=2s',
      '--retry-period=500ms',
      '--refresh-interval=1s',
      '--http-host=127.0.0.1',
    ],
    { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', SENTINEL_HTTP_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const logs: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => children.delete(child));
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  };
  await waitFor(
    `operator ${identity} serving /readyz`,
    async () => {
      if (child.exitCode !== null) throw new Error(`operator ${identity} exited with ${child.exitCode}: ${logs.join('')}`);
      return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok;
    },
    30_000,
  );
  return { identity, port, child, logs, exited, metric };
}

async function holder(c: Cluster, namespace: string): Promise<{ holder: string; transitions: number } | undefined> {
  const lease = await c.coordination.readNamespacedLease({ namespace, name: 'sentinel-operator' }).catch(() => undefined);
  const identity = lease?.spec?.holderIdentity;
  return identity ? { holder: identity, transitions: lease?.spec?.leaseTransitions ?? 0 } : undefined;
}

async function createEvent(c: Cluster, namespace: string, name: string): Promise<void> {
  await createTicketEvent(c, namespace, name, {
    displayName: name,
    sale: { opensAt: '2030-01-01T00:00:00Z', closesAt: '2030-01-02T00:00:00Z' },
    layout: { pools: [{ id: 'GA', capacity: 10 }] },
  });
}

t.test('one leader at a time; the standby takes over when the leader dies', async (t) => {
  const c = await cluster();
  const pool = await testDatabase();
  const { namespace, cleanup } = await testNamespace(c, 'op-lead');
  const started: OperatorProcess[] = [];
  t.teardown(async () => {
    for (const p of started) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await p.exited;
    }
    await cleanup();
    await pool.end();
  });
  started.push(...(await Promise.all([startOperatorProcess(namespace, 'op-a'), startOperatorProcess(namespace, 'op-b')])));

  const first = await waitFor('a leader', () => holder(c, namespace));
  const leader = started.find((p) => p.identity === first.holder);
  const standby = started.find((p) => p.identity !== first.holder);
  if (leader === undefined || standby === undefined) throw new Error(`unexpected holder ${first.holder}`);
  t.pass(`${leader.identity} leads, ${standby.identity} stands by`);

  await createEvent(c, namespace, 'one');
  await waitForStatus(
    c,
    namespace,
    'one',
    'one provisioned by the leader',
    (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True',
    30_000,
  );
  t.equal(await leader.metric('sentinel_operator_leader'), 1);
  t.equal(await standby.metric('sentinel_operator_leader'), 0);
  // The status is written inside the reconcile; the counter moves once it returns.
  t.ok(
    await waitFor('the leader to count its reconcile', async () => (await leader.metric('sentinel_operator_reconciles_total')) > 0),
    'the leader reconciles',
  );
  t.equal(await standby.metric('sentinel_operator_reconciles_total'), 0, 'the standby never acted');
  t.equal((await fetch(`http://127.0.0.1:${standby.port}/readyz`)).status, 200, 'a standby is ready (healthy, waiting)');

  const killedAt = Date.now();
  leader.child.kill('SIGKILL');
  await leader.exited;
  const next = await waitFor(
    'the standby to take the lease',
    async () => {
      const h = await holder(c, namespace);
      return h?.holder === standby.identity ? h : undefined;
    },
    15_000,
  );
  const takeover = Date.now() - killedAt;
  t.ok(takeover < 8_000, `took over ${takeover} ms after the kill (lease 3 s)`);
  t.equal(next.transitions, first.transitions + 1, 'leaseTransitions counts the hand-over');

  await createEvent(c, namespace, 'two');
  await waitForStatus(
    c,
    namespace,
    'two',
    'two provisioned by the new leader',
    (o) => condition(o.status, 'InventoryProvisioned')?.status === 'True',
    30_000,
  );
  t.equal(await standby.metric('sentinel_operator_leader'), 1);

  // A clean stop releases the Lease at once instead of letting it run out.
  standby.child.kill('SIGTERM');
  t.equal(await standby.exited, 0, 'SIGTERM: graceful exit 0');
  const released = await c.coordination.readNamespacedLease({ namespace, name: 'sentinel-operator' });
  t.equal(released.spec?.holderIdentity ?? '', '', 'the lease was released on shutdown');
});
