/**
 * A leader that loses its Lease (it cannot renew: its link to the API server drops every packet)
 * ends its term and does not campaign again — even though, with nobody else campaigning, the
 * Lease is still there for it to take back once the link recovers. The replica is on its way out
 * (the operator exits on a lost term); leading again while it winds down would keep a standby
 * from taking over.
 */
import t from 'tap';
import { k8s } from '../../../src/adapters/kubernetes/client.js';
import { LeaderElector } from '../../../src/operator/leader-election.js';
import { silentLogger } from '../../../src/log.js';
import { tcpRelay } from '../../support/tcp-relay.js';
import { cluster, testNamespace, waitFor } from './harness.js';

t.test('a leader that lost its Lease does not campaign again', async (t) => {
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
    {
      leaseName: 'lost-test',
      leaseNamespace: namespace,
      identity: 'only',
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 300,
    },
    { onStartedLeading: () => terms.push('started'), onStoppedLeading: (reason) => terms.push(reason) },
    silentLogger,
  );
  elector.start();
  t.teardown(() => elector.stop());
  await waitFor('leadership', () => elector.isLeader || undefined, 10_000);

  relay.blackhole();
  await waitFor('the term to end', () => terms.includes('lost') || undefined, 10_000);
  relay.restore();
  // Long enough for several campaigns, past the Lease's expiry: nothing else holds it.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  t.same(terms, ['started', 'lost'], 'one term, lost, and no second one');
  t.notOk(elector.isLeader);
});
