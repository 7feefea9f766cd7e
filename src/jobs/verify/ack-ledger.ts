/**
 * What clients were told, from stress response logs: every hold, reservation and release that was
 * acknowledged (201/204), and the seats each granted. Some checks need nothing but the log — no two
 * clients may have been told they bought the same seat, no seat may be held after it was sold, and
 * every acknowledgement must name what it granted — and the rest compare the ledger with Postgres
 * (`checkAcknowledged`). A log with no record of the event checks nothing (`checkable`).
 */
import { LatencyHistogram, type LatencySummary } from '../stress/histogram.js';
import type { ResponseRecord } from '../stress/response-log.js';
import type { Reader } from './inventory-checks.js';
import type { Violations } from './violations.js';
import type { ReservationRow } from '../../adapters/postgres/inventory-store.js';

interface AckedHold {
  readonly customer: string;
  readonly seats: readonly string[] | undefined;
  readonly pool: string | undefined;
  readonly quantity: number | undefined;
  readonly decidedAt: number | undefined;
}

interface AckedReservation extends AckedHold {
  readonly hold: string | undefined;
}

/** Counts of what the logs held, for the report. */
export interface LedgerCounts {
  readonly lines: number;
  readonly other_events: number;
  readonly acknowledged: { readonly holds: number; readonly reservations: number; readonly releases: number };
  readonly status: Record<string, number>;
  /** Latency of 409 answers (invariant 5: losers answered at once). */
  readonly loser_latency_ms: LatencySummary;
}

const sameSeats = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

export class AckLedger {
  readonly holds = new Map<string, AckedHold>();
  readonly reservations = new Map<string, AckedReservation>();
  /** Hold id → customer of a 204 to DELETE. */
  readonly releases = new Map<string, string>();
  /** Acknowledgements that name no hold or reservation: nothing can find them in Postgres. */
  private readonly unnamed: ResponseRecord[] = [];
  private readonly statuses = new Map<number, number>();
  private readonly losers = new LatencyHistogram();
  private lines = 0;
  private otherEvents = 0;

  constructor(private readonly eventId: string) {}

  add(record: ResponseRecord): void {
    this.lines += 1;
    if (record.event !== undefined && record.event !== this.eventId) {
      this.otherEvents += 1;
      return;
    }
    this.statuses.set(record.status, (this.statuses.get(record.status) ?? 0) + 1);
    if (record.status === 409) this.losers.recordMs(record.ms);
    if (record.status === 204 && record.op === 'release') {
      if (record.hold) this.releases.set(record.hold, record.customer);
      else this.unnamed.push(record);
    }
    if (record.status !== 201) return;
    const granted = {
      customer: record.customer,
      seats: record.seats,
      pool: record.pool,
      quantity: record.quantity,
      decidedAt: record.decidedAt,
    };
    if (record.op === 'confirm' || record.op === 'reserve') {
      if (record.reservation) this.reservations.set(record.reservation, { ...granted, hold: record.hold });
      else this.unnamed.push(record);
    } else if (record.hold) {
      this.holds.set(record.hold, granted);
    } else this.unnamed.push(record);
  }

  /**
   * Why the acknowledgement checks cannot be made, or undefined when they can: the logs hold no
   * record of this event (empty, or all of other events). Then "nothing was missing" would mean
   * nothing was looked at.
   */
  checkable(): string | undefined {
    if (this.lines > this.otherEvents) return undefined;
    return this.lines === 0
      ? 'the response logs are empty'
      : `the response logs hold no record of event ${this.eventId} (${this.lines} lines, all of other events)`;
  }

  counts(): LedgerCounts {
    return {
      lines: this.lines,
      other_events: this.otherEvents,
      acknowledged: { holds: this.holds.size, reservations: this.reservations.size, releases: this.releases.size },
      status: Object.fromEntries([...this.statuses].sort(([a], [b]) => a - b).map(([k, v]) => [String(k), v])),
      loser_latency_ms: this.losers.summary(),
    };
  }

  /**
   * The checks that need only the log: acknowledgements that name nothing, and double sales and
   * holds granted on sold seats, as clients saw them.
   */
  checkClientView(violations: Violations): void {
    for (const r of this.unnamed) {
      const what = r.op === 'confirm' || r.op === 'reserve' ? 'reservation' : 'hold';
      violations.add(
        'ack-missing',
        `a ${r.status} to ${r.customer} for ${r.op}${r.seat ? ` of ${r.seat}` : ''} names no ${what}: what it acknowledged cannot be found in Postgres`,
      );
    }
    const soldTo = new Map<string, { reservation: string; customer: string; at: number | undefined; hold: string | undefined }>();
    for (const [id, r] of this.reservations) {
      for (const seat of r.seats ?? []) {
        const first = soldTo.get(seat);
        if (first === undefined) soldTo.set(seat, { reservation: id, customer: r.customer, at: r.decidedAt, hold: r.hold });
        else
          violations.add(
            'client-double-sale',
            `seat ${seat} was sold to ${first.customer} (${first.reservation}) and to ${r.customer} (${id})`,
          );
      }
    }
    for (const [id, h] of this.holds) {
      if (h.decidedAt === undefined) continue;
      for (const seat of h.seats ?? []) {
        const sale = soldTo.get(seat);
        if (sale === undefined || sale.hold === id || sale.at === undefined) continue;
        if (h.decidedAt > sale.at) {
          violations.add(
            'client-double-sale',
            `seat ${seat} was sold to ${sale.customer} (${sale.reservation}) and held ${h.decidedAt - sale.at} ms later by ${h.customer} (${id})`,
          );
        }
      }
    }
  }
}

const CHUNK = 5000;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** Every acknowledged hold, reservation and release must be in Postgres, as it was answered. */
export async function checkAcknowledged(db: Reader, eventId: string, ledger: AckLedger, violations: Violations): Promise<void> {
  for (const ids of chunks([...ledger.holds.keys()])) {
    const { rows } = await db.query<{
      hold_id: string;
      event_id: string;
      customer: string;
      seats: string[];
      pool_id: string | null;
      quantity: number;
    }>('SELECT hold_id, event_id, customer, seats, pool_id, quantity FROM holds WHERE hold_id = ANY($1)', [ids]);
    const found = new Map(rows.map((r) => [r.hold_id, r]));
    for (const id of ids) {
      const acked = ledger.holds.get(id)!;
      const row = found.get(id);
      if (row === undefined) violations.add('ack-missing', `hold ${id} (201 to ${acked.customer}) is not in the database`);
      else if (row.event_id !== eventId || row.customer !== acked.customer) {
        violations.add('ack-missing', `hold ${id} was answered to ${acked.customer} but is ${row.customer}'s in event ${row.event_id}`);
      } else if (acked.seats !== undefined && acked.pool === undefined && !sameSeats(acked.seats, row.seats)) {
        violations.add('ack-missing', `hold ${id} was answered with seats ${acked.seats.join(',')} but holds ${row.seats.join(',')}`);
      } else if (acked.pool !== undefined && (row.pool_id !== acked.pool || row.quantity !== acked.quantity)) {
        violations.add(
          'ack-missing',
          `hold ${id} was answered with ${acked.quantity} × ${acked.pool} but holds ${row.quantity} × ${row.pool_id ?? 'seats'}`,
        );
      }
    }
  }
  for (const ids of chunks([...ledger.reservations.keys()])) {
    const { rows } = await db.query<Omit<ReservationRow, 'confirmed_at'>>(
      'SELECT reservation_id, event_id, hold_id, customer, seats, pool_id, quantity FROM reservations WHERE reservation_id = ANY($1)',
      [ids],
    );
    const found = new Map(rows.map((r) => [r.reservation_id, r]));
    for (const id of ids) {
      const acked = ledger.reservations.get(id)!;
      const row = found.get(id);
      if (row === undefined) violations.add('ack-missing', `reservation ${id} (201 to ${acked.customer}) is not in the database`);
      else if (row.event_id !== eventId || row.customer !== acked.customer || (acked.hold !== undefined && acked.hold !== row.hold_id)) {
        violations.add(
          'ack-missing',
          `reservation ${id} was answered to ${acked.customer} (hold ${acked.hold}) but is ${row.customer}'s (hold ${row.hold_id})`,
        );
      } else if (acked.seats !== undefined && acked.pool === undefined && !sameSeats(acked.seats, row.seats)) {
        violations.add('ack-missing', `reservation ${id} was answered with seats ${acked.seats.join(',')} but has ${row.seats.join(',')}`);
      } else if (acked.pool !== undefined && (row.pool_id !== acked.pool || row.quantity !== acked.quantity)) {
        violations.add(
          'ack-missing',
          `reservation ${id} was answered with ${acked.quantity} × ${acked.pool} but has ${row.quantity} × ${row.pool_id ?? 'seats'}`,
        );
      }
    }
  }
  for (const ids of chunks([...ledger.releases.keys()])) {
    const { rows } = await db.query<{ hold_id: string; state: string }>('SELECT hold_id, state FROM holds WHERE hold_id = ANY($1)', [ids]);
    const found = new Map(rows.map((r) => [r.hold_id, r.state]));
    for (const id of ids) {
      const state = found.get(id);
      if (state === undefined) violations.add('ack-missing', `hold ${id} was released (204) but is not in the database`);
      else if (state !== 'released' && state !== 'expired') violations.add('ack-missing', `hold ${id} was released (204) but is ${state}`);
    }
  }
}
