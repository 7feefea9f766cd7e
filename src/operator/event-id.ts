/**
 * The event id of a TicketEvent: `<namespace>--<name>`.
 *
 * It keys the inventory in Postgres, the NATS subjects (`sentinel.<event>.<shard>`) and the REST
 * paths (`/v1/events/<event>/...`), so it must be stable for the object's life, unique across the
 * cluster, free of `.` (a NATS token separator) and, for the inventory, a DNS label of at most 63
 * characters. A single `-` would be ambiguous (`a-b/c` and `a/b-c` would collide and share one
 * inventory). The CRD forbids `--` in TicketEvent names, and no DNS label starts or ends with `-`,
 * so splitting at the last `--` recovers namespace and name: the mapping is injective. See ADR 0005.
 */

/** A TicketEvent's namespace and name. */
export interface ObjectKey {
  readonly namespace: string;
  readonly name: string;
}

/** Longest event id the inventory accepts (a DNS label). */
export const MAX_EVENT_ID_LENGTH = 63;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The event id of the TicketEvent `namespace/name`. */
export function eventIdOf(key: ObjectKey): string {
  return `${key.namespace}--${key.name}`;
}

/** Why `key` has no usable event id (too long, or a name with `--`), or undefined when it has one. */
export function eventIdProblem(key: ObjectKey): string | undefined {
  if (key.name.includes('--'))
    return `metadata.name ${JSON.stringify(key.name)} must not contain '--': it separates namespace and name in the event id`;
  const id = eventIdOf(key);
  if (id.length > MAX_EVENT_ID_LENGTH) {
    return `event id ${JSON.stringify(id)} (<namespace>--<name>) is ${id.length} characters; the inventory allows ${MAX_EVENT_ID_LENGTH}: use a shorter name or namespace`;
  }
  return undefined;
}

/** The TicketEvent an event id belongs to, or undefined when the id was not made by `eventIdOf`. */
export function objectKeyOfEventId(eventId: string): ObjectKey | undefined {
  const at = eventId.lastIndexOf('--');
  if (at <= 0) return undefined;
  const namespace = eventId.slice(0, at);
  const name = eventId.slice(at + 2);
  if (!DNS_LABEL.test(namespace) || !DNS_LABEL.test(name) || name.includes('--')) return undefined;
  return { namespace, name };
}

/** The work-queue key of an object: `namespace/name`. */
export function queueKeyOf(key: ObjectKey): string {
  return `${key.namespace}/${key.name}`;
}

/** Parses a work-queue key. */
export function objectKeyOf(queueKey: string): ObjectKey {
  const slash = queueKey.indexOf('/');
  return { namespace: queueKey.slice(0, slash), name: queueKey.slice(slash + 1) };
}
