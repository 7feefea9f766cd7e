/**
 * The checks `sentinel verify` runs, each tied to an invariant of the architecture, and the
 * violations it found. Every violation is counted; the first few of each check are kept with their
 * details, so a broken run yields a readable report rather than a million lines.
 */

/** Every check, with the invariant (architecture.md, "Invariants") it enforces. */
export const CHECKS = {
  'seat-held-twice': {
    invariant: 1,
    description: 'no seat was ever in two holds at once (every hold of the event, including those released or expired since)',
  },
  'seat-sold-twice': { invariant: 1, description: 'no seat is in two reservations' },
  'seat-row-disagrees': { invariant: 1, description: "every seat row agrees with its hold's state" },
  'over-capacity': { invariant: 1, description: 'held + sold ≤ capacity for every pool; pool counters match the holds' },
  'client-double-sale': {
    invariant: 1,
    description: 'no two clients were told they bought the same seat, or held a seat after it was sold',
  },
  'reservation-disagrees': { invariant: 2, description: 'every reservation matches its confirmed hold (customer, seats, quantity)' },
  'ack-missing': { invariant: 2, description: 'every 201/204 a client saw is in Postgres, as it was answered' },
  'refusal-untrue': {
    invariant: 2,
    description: 'no request a client was told the inventory refused (409/422) was carried out under its Idempotency-Key',
  },
  'outbox-missing': { invariant: 2, description: 'every reservation has an outbox row' },
  'topic-missing': { invariant: 2, description: 'every confirmed reservation is on the Kafka topic (after dedupe by key)' },
  'topic-unknown': { invariant: 2, description: 'nothing on the topic for this event is unknown to Postgres or disagrees with it' },
  'hold-past-ttl': {
    invariant: 3,
    description: 'no live hold on a served shard is past its TTL + slack; no hold was confirmed after it expired',
  },
  'hold-longer-than-ttl': {
    invariant: 3,
    description:
      "no hold was given longer than the event's hold TTL + slack from its creation to its expiry (if the TTL was edited during the sale, longer than any TTL an engine accepts)",
  },
  'customer-limit': {
    invariant: 4,
    description: "no customer ever held or bought more than the event's (current) per-customer limit at once",
  },
  'usage-disagrees': { invariant: 4, description: "the event-wide usage counters match each customer's holds" },
} as const;

export type CheckName = keyof typeof CHECKS;

/** One broken invariant. */
export interface Violation {
  readonly check: CheckName;
  readonly message: string;
}

/** Details kept per check; the rest are only counted. */
export const KEPT_PER_CHECK = 20;

export class Violations {
  private readonly kept: Violation[] = [];
  private readonly counts = new Map<CheckName, number>();

  add(check: CheckName, message: string): void {
    const n = (this.counts.get(check) ?? 0) + 1;
    this.counts.set(check, n);
    if (n <= KEPT_PER_CHECK) this.kept.push({ check, message });
  }

  get total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }

  count(check: CheckName): number {
    return this.counts.get(check) ?? 0;
  }

  /** The kept violations, plus one line per check whose details were cut. */
  list(): Violation[] {
    const cut = [...this.counts]
      .filter(([, n]) => n > KEPT_PER_CHECK)
      .map(([check, n]) => ({ check, message: `… and ${n - KEPT_PER_CHECK} more` }));
    return [...this.kept, ...cut];
  }
}
