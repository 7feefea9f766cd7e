import * as k8s from '@kubernetes/client-node';

export { k8s };

/** Loads a kubeconfig from a path (the local API server's admin config) or the in-cluster/default chain. */
export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

/** The field manager every server-side apply of Sentinel uses. */
export const FIELD_MANAGER = 'sentinel-operator';

/** Server-side apply of one object (create or update), owned by FIELD_MANAGER. */
export async function serverSideApply<T extends k8s.KubernetesObject>(
  client: k8s.KubernetesObjectApi,
  object: T,
  force = true,
): Promise<T> {
  return client.patch(object, undefined, undefined, FIELD_MANAGER, force, k8s.PatchStrategy.ServerSideApply) as Promise<T>;
}
