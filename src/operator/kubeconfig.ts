/**
 * The operator's kubeconfig, loaded before anything else happens: a wrong `--kubeconfig` (or
 * $KUBECONFIG) is then a one-line ConfigError at start — not a file-not-found stack trace after the
 * migrations have run, nor a "No active cluster" from the first request.
 */
import { loadKubeConfig, type k8s } from '../adapters/kubernetes/client.js';
import { ConfigError } from '../errors.js';

/**
 * Loads `path` (the `--kubeconfig` flag), else $KUBECONFIG, ~/.kube/config or the in-cluster
 * service account (client-node's default chain). Throws a ConfigError naming where it looked.
 */
export function operatorKubeConfig(path: string | undefined): k8s.KubeConfig {
  if (path === '') throw new ConfigError('--kubeconfig needs a path');
  const source =
    path !== undefined
      ? `--kubeconfig ${path}`
      : process.env['KUBECONFIG']
        ? `$KUBECONFIG (${process.env['KUBECONFIG']})`
        : 'the default kubeconfig';
  let kubeConfig: k8s.KubeConfig;
  try {
    kubeConfig = loadKubeConfig(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : `cannot be read as a kubeconfig: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
    throw new ConfigError(`${source}: ${why}`);
  }
  const cluster = kubeConfig.getCurrentCluster();
  if (path === undefined && cluster?.name === 'cluster' && cluster.server === 'http://localhost:8080') {
    // What client-node makes up when it finds nothing (no $KUBECONFIG, no ~/.kube/config, not in a
    // pod): an API server on localhost:8080 without TLS, which is never the one meant.
    throw new ConfigError(
      'no kubeconfig found: set --kubeconfig or $KUBECONFIG, write ~/.kube/config, or run in a pod with a service account',
    );
  }
  if (cluster === null) {
    throw new ConfigError(`${source}: no current context, or its cluster is missing (see kubectl config get-contexts)`);
  }
  return kubeConfig;
}
