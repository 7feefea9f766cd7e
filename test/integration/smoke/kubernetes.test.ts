import t from 'tap';
import { k8s, loadKubeConfig, serverSideApply } from '../../../src/adapters/kubernetes/client.js';
import { kubeconfigPath, uniqueName } from '../../support/env.js';

t.test('kubernetes: create a namespace, apply a CRD, read both back', async (t) => {
  const kc = loadKubeConfig(kubeconfigPath());
  const server = new URL(kc.getCurrentCluster()?.server ?? '');
  t.ok(['127.0.0.1', 'localhost'].includes(server.hostname), `API server on loopback (${server.host})`);
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);

  const namespace = uniqueName('smoke');
  await serverSideApply(objects, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  t.teardown(() => core.deleteNamespace({ name: namespace }).then(() => undefined));
  const ns = await core.readNamespace({ name: namespace });
  t.equal(ns.metadata?.name, namespace);

  const plural = `smokes${Date.now().toString(36)}`;
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.smoke.sentinel.dev` },
    spec: {
      group: 'smoke.sentinel.dev',
      scope: 'Namespaced',
      names: { plural, singular: plural.slice(0, -1), kind: 'Smoke', listKind: 'SmokeList' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } },
          },
        },
      ],
    },
  };
  await serverSideApply(objects, crd);
  t.teardown(() => ext.deleteCustomResourceDefinition({ name: crd.metadata.name }).then(() => undefined));
  const read = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
  t.equal(read.spec.group, 'smoke.sentinel.dev');
});
