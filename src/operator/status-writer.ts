/**
 * The operator's guarded writes to a TicketEvent: a StatusPatch through the status subresource
 * (folded onto the latest status, written only when it changes something), and edits of the
 * finalizer list — each retried on conflict with a fresh read (someone else wrote first).
 */
import { applyStatusPatch, sameStatus, type StatusPatch } from './conditions.js';
import { isConflict, KubernetesConflictError } from './kube-errors.js';
import type { KubeGateway } from './kube-gateway.js';
import type { TicketEventObject } from './types.js';

const ATTEMPTS = 5;

/** The object after the write, and whether anything was written. */
export interface StatusWrite {
  readonly object: TicketEventObject;
  readonly changed: boolean;
}

export async function writeStatus(gateway: KubeGateway, object: TicketEventObject, patch: StatusPatch, now: Date): Promise<StatusWrite> {
  let current = object;
  for (let attempt = 1; ; attempt++) {
    const generation = patch.observedGeneration ?? current.metadata.generation;
    const next = applyStatusPatch(current.status, patch, now, generation);
    if (sameStatus(current.status, next)) return { object: current, changed: false };
    try {
      return { object: await gateway.replaceStatus(current, next), changed: true };
    } catch (error) {
      if (!isConflict(error)) throw error;
      if (attempt >= ATTEMPTS)
        throw new KubernetesConflictError(
          `status of ${current.metadata.namespace}/${current.metadata.name}: still conflicting after ${ATTEMPTS} attempts`,
          error,
        );
      const fresh = await gateway.getTicketEvent(current.metadata);
      if (fresh === undefined) return { object: current, changed: false };
      current = fresh;
    }
  }
}

/**
 * Edits the finalizer list, guarded by the resourceVersion, re-reading and editing afresh on a
 * conflict (another writer — `kubectl annotate`, the garbage collector — changed the object since
 * it was read) as `writeStatus` does. `edit` returns the list to write, or undefined to leave the
 * object as it is (the fresh read says the edit is no longer wanted). Resolves to the object as
 * written (or read), or undefined when it is gone.
 */
export async function writeFinalizers(
  gateway: KubeGateway,
  object: TicketEventObject,
  edit: (object: TicketEventObject) => readonly string[] | undefined,
): Promise<TicketEventObject | undefined> {
  let current = object;
  for (let attempt = 1; ; attempt++) {
    const finalizers = edit(current);
    if (finalizers === undefined) return current;
    try {
      return await gateway.setFinalizers(current, finalizers);
    } catch (error) {
      if (!isConflict(error)) throw error;
      if (attempt >= ATTEMPTS)
        throw new KubernetesConflictError(
          `finalizers of ${current.metadata.namespace}/${current.metadata.name}: still conflicting after ${ATTEMPTS} attempts`,
          error,
        );
      const fresh = await gateway.getTicketEvent(current.metadata);
      if (fresh === undefined) return undefined;
      current = fresh;
    }
  }
}
