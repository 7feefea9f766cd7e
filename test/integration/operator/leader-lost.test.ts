/**
 * A leader that loses its Lease (it cannot renew: its link to the API server drops every packet)
 * ends its term and does not campaign again — even though, with nobody else campaigning, the
 * Lease is still there for it to take back once the link recovers. The replica is on its way out
 * (the operator exits on a lost term); leading again while it winds down would keep a standby
 * from taking over. Once its work has stopped it releases the Lease, and a standby takes over at
 * once instead of waiting out the lease duration.
 */
import t, { type Test } from 'tap';
import { k8s } from '../../../src/adapters/kubernetes/client.js';
import { LeaderElector } from '../../../src/operator/leader-election.js';
import { silentLogger } from '../../../src/log.js';
import { tcpRelay } from '../../support/tcp-relay.js';
import { cluster, testNamespace, waitFor } from './harness.js';

const timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 };

/** A leader elected through a relay to the API server, whose term is then lost (the relay drops everything), and the link restored (unless `restore` is false). */
async function leaderThatLost(t: Test, leaseName: string, restore = true) {
  const c = await cluster();
  const { namespace, cleanup } = await testNamespace(c, 'op-lost');
  t.teardown(cleanup);
  const server = new URL(c.kubeConfig.getCurrentCluster()!.server);
  const relay = await tcpRelay(server.hostname, Number(server.port));
  t.teardown(relay.close);
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromString(c.kubeConfig.exportConfig());
  const current = kubeConfig.getCurrentCluster()!;
  kubeConfig.clusters = kubeConfig.clusters.map((cl) =>
    cl.name === current.name ? { ...cl, server: `https://127.0.0.1:${relay.port}` } : cl,
  );

  const terms: string[] = [];
  const elector = new LeaderElector(
    kubeConfig,
    { leaseName, leaseNamespace: namespace, identity: 'only', ...timing },
    { onStartedLeading: () => terms.push('started'), onStoppedLeading: (reason) => terms.push(reason) },
    silentLogger,
  );
  elector.start();
  t.teardown(() => elector.stop());
  await waitFor('leadership', () => elector.isLeader || undefined, 10_000);

  relay.blackhole();
  await waitFor('the term to end', () => terms.includes('lost') || undefined, 10_000);
  if (restore) relay.restore();
  return { c, namespace, elector, terms };
}

t.test('a leader that lost its Lease does not campaign again', async (t) => {
  const { elector, terms } = await leaderThatLost(t, 'lost-test');
  // Long enough for several campaigns, past the Lease's expiry: nothing else holds it.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  t.same(terms, ['started', 'lost'], 'one term, lost, and no second one');
  t.notOk(elector.isLeader);
});

t.test('once its work has stopped, a leader that lost its Lease releases it to a standby', async (t) => {
  const { c, namespace, elector } = await leaderThatLost(t, 'lost-release');
  const lease = () => c.kubeConfig.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'lost-release', namespace });
  t.equal((await lease()).spec?.holderIdentity, 'only', 'the lost Lease still names the old leader');
  await elector.stop({ releaseAfterLoss: true });
  t.equal((await lease()).spec?.holderIdentity, '', 'released');

  const standby = new LeaderElector(
    c.kubeConfig,
    { leaseName: 'lost-release', leaseNamespace: namespace, identity: 'standby', ...timing },
    { onStartedLeading: () => undefined, onStoppedLeading: () => undefined },
    silentLogger,
  );
  const asked = Date.now();
  standby.start();
  t.teardown(() => standby.stop());
  await waitFor('the standby to lead', () => standby.isLeader || undefined, 10_000);
  t.ok(Date.now() - asked < timing.leaseDurationMs, `the standby led ${Date.now() - asked} ms after the release, within a lease duration`);
});

t.test('a leader that lost its Lease to a link that stays dead still stops, within its deadlines', async (t) => {
  const { elector } = await leaderThatLost(t, 'lost-dead-link', false);
  const asked = Date.now();
  await elector.stop({ releaseAfterLoss: true });
  const took = Date.now() - asked;
  t.ok(took <= 2 * timing.renewDeadlineMs + 1000, `stopped after ${took} ms: the last renewal and the release each get the renew deadline`);
});
