/**
 * The engine Deployments as the operator's Deployment reflector last saw them: the reconciler reads
 * them there rather than with a GET per reconcile (the reflector lists and watches them anyway, to
 * repair drift). Before that reflector has listed — and between leadership terms — it reads through
 * the API server.
 */
import type { k8s } from '../adapters/kubernetes/client.js';
import type { ObjectKey } from './event-id.js';
import { engineAvailabilityOf, type EngineAvailability, type EngineDeployments } from './kube-gateway.js';

/** A store of watched objects (the `Reflector` with `cache`). */
export interface ObjectCache {
  readonly hasSynced: boolean;
  get(namespace: string, name: string): k8s.KubernetesObject | undefined;
}

export class CachedEngineDeployments implements EngineDeployments {
  private cache: ObjectCache | undefined;

  constructor(private readonly direct: EngineDeployments) {}

  /** Reads from `cache` once it has synced; undefined: through the API server again. */
  use(cache: ObjectCache | undefined): void {
    this.cache = cache;
  }

  async engineAvailability(key: ObjectKey): Promise<EngineAvailability> {
    const cache = this.cache;
    if (cache === undefined || !cache.hasSynced) return this.direct.engineAvailability(key);
    const deployment = cache.get(key.namespace, key.name);
    return deployment === undefined ? { found: false } : engineAvailabilityOf(deployment as k8s.V1Deployment);
  }
}
