/**
 * Leader election judges time on a monotonic clock: a wall clock that steps (an NTP correction, a
 * VM resumed) neither lets a candidate take a live leader's Lease nor keeps a leader that cannot
 * renew leading. Until 2026-12-05 every duration was `Date.now()`: a candidate whose clock stepped
 * forward took the Lease at once, and a leader whose clock stepped back never gave up — two leaders.
 * The clocks here step an hour at every reading, forward for the candidate and back for the leader.
 */
import t from 'tap';
import { k8s } from '../../../src/adapters/kubernetes/client.js';
import { silentLogger } from '../../../src/log.js';
import { LeaderElector, type ElectionClock } from '../../../src/operator/leader-election.js';
import { tcpRelay } from '../../support/tcp-relay.js';
import { cluster, testNamespace, waitFor } from './harness.js';

const HOUR = 3_600_000;
const timing = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000 };

/** A real monotonic clock and a wall clock that, once `step()` was called, moves `byMs` at every reading. */
function steppingClock(byMs: number): { clock: ElectionClock; step(): void } {
  let offset = 0;
  let stepping = false;
  return {
    clock: {
      monotonicMs: () => performance.now(),
      wall: () => {
        if (stepping) offset += byMs;
        return new Date(Date.now() + offset);
      },
    },
    step: () => {
      stepping = true;
    },
  };
}

t.test('a stepping wall clock hands no live Lease over, and does not keep a leader that cannot renew', async (t) => {
  const c = await cluster();
  const { namespace, cleanup } = await testNamespace(c, 'op-clock');
  t.teardown(cleanup);
  const leaseName = 'clock-test';
  const lease = () => c.coordination.readNamespacedLease({ name: leaseName, namespace });

  // The leader talks to the API server through a relay, so that its link can be cut below.
  const server = new URL(c.kubeConfig.getCurrentCluster()!.server);
  const relay = await tcpRelay(server.hostname, Number(server.port));
  t.teardown(relay.close);
  const relayed = new k8s.KubeConfig();
  relayed.loadFromString(c.kubeConfig.exportConfig());
  const current = relayed.getCurrentCluster()!;
  relayed.clusters = relayed.clusters.map((cl) => (cl.name === current.name ? { ...cl, server: `https://127.0.0.1:${relay.port}` } : cl));

  const timeline: string[] = [];
  const leaderClock = steppingClock(-HOUR);
  const leader = new LeaderElector(
    relayed,
    { leaseName, leaseNamespace: namespace, identity: 'leader', ...timing, retryPeriodMs: 1_000 },
    { onStartedLeading: () => timeline.push('leader started'), onStoppedLeading: (reason) => timeline.push(`leader ${reason}`) },
    silentLogger,
    { clock: leaderClock.clock },
  );
  leader.start();
  t.teardown(() => leader.stop());
  await waitFor('the leader to lead', () => leader.isLeader || undefined, 10_000);
  leaderClock.step();

  const candidateClock = steppingClock(HOUR);
  const candidate = new LeaderElector(
    c.kubeConfig,
    { leaseName, leaseNamespace: namespace, identity: 'candidate', ...timing, retryPeriodMs: 200 },
    {
      onStartedLeading: () => timeline.push('candidate started'),
      onStoppedLeading: (reason) => timeline.push(`candidate ${reason}`),
      onNewLeader: (identity) => {
        if (identity === 'leader') candidateClock.step();
      },
    },
    silentLogger,
    { clock: candidateClock.clock },
  );
  candidate.start();
  t.teardown(() => candidate.stop());

  // Longer than the lease duration, with a dozen attempts of the candidate, each an hour later on its wall clock.
  await new Promise((resolve) => setTimeout(resolve, timing.leaseDurationMs + 500));
  t.same(timeline, ['leader started'], 'the leader keeps leading and the candidate never takes over');
  t.ok(leader.isLeader);
  t.notOk(candidate.isLeader);
  const held = await lease();
  t.equal(held.spec?.holderIdentity, 'leader');
  t.equal(held.spec?.leaseTransitions ?? 0, 0, 'the Lease never changed hands');

  // The leader's link dies: it stops leading within its renew deadline, however far back its wall
  // clock went meanwhile, and only then does the candidate take over — after a lease duration of
  // its own (monotonic) time without a renewal.
  relay.blackhole();
  const cut = performance.now();
  await waitFor('the leader to give up', () => timeline.includes('leader lost') || undefined, timing.renewDeadlineMs + 2_000);
  t.ok(
    performance.now() - cut <= timing.renewDeadlineMs + 1_000,
    `the leader gave up ${Math.round(performance.now() - cut)} ms after the cut`,
  );
  await waitFor('the candidate to take over', () => candidate.isLeader || undefined, timing.leaseDurationMs + 3_000);
  t.same(timeline, ['leader started', 'leader lost', 'candidate started'], 'never two leaders');
  t.equal((await lease()).spec?.holderIdentity, 'candidate');
});
