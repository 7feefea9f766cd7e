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
  return onFreshReads(
    gateway,
    object,
    'status',
    async (current) => {
      const generation = patch.observedGeneration ?? current.metadata.generation;
      const next = applyStatusPatch(current.status, patch, now, generation);
      if (sameStatus(current.status, next)) return { object: current, changed: false };
      return { object: await gateway.replaceStatus(current, next), changed: true };
    },
    (current) => ({ object: current, changed: false }),
  );
}

/**
 * Edits the finalizer list, guarded by the resourceVersion, re-reading and editing afresh on a
 * conflict (another writer — `kubectl annotate`, the garbage collector — changed the object since
 * it was read) as `writeStatus` does. `edit` returns the list to write, or undefined to leave the
 * object as it is (the fresh read says the edit is no longer wanted). Resolves to the object as
 * written (or read), or undefined when it is gone.
 */
export function writeFinalizers(
  gateway: KubeGateway,
  object: TicketEventObject,
  edit: (object: TicketEventObject) => readonly string[] | undefined,
): Promise<TicketEventObject | undefined> {
  return onFreshReads(
    gateway,
    object,
    'finalizers',
    async (current) => {
      const finalizers = edit(current);
      return finalizers === undefined ? current : gateway.setFinalizers(current, finalizers);
    },
    () => undefined,
  );
}

/**
 * Runs `write` (a write guarded by the object's resourceVersion) on the object, and again on a
 * fresh read after each conflict, at most ATTEMPTS times; `gone` answers when the object vanished.
 */
async function onFreshReads<R>(
  gateway: KubeGateway,
  object: TicketEventObject,
  what: string,
  write: (current: TicketEventObject) => Promise<R>,
  gone: (last: TicketEventObject) => R,
): Promise<R> {
  let current = object;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write(current);
    } catch (error) {
      if (!isConflict(error)) throw error;
      if (attempt >= ATTEMPTS)
        throw new KubernetesConflictError(
          `${what} of ${current.metadata.namespace}/${current.metadata.name}: still conflicting after ${ATTEMPTS} attempts`,
          error,
        );
      const fresh = await gateway.getTicketEvent(current.metadata);
      if (fresh === undefined) return gone(current);
      current = fresh;
    }
  }
}
