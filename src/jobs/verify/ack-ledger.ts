/**
 * What clients were told, from stress response logs: every hold, reservation and release that was
 * acknowledged (201/204), and the seats each granted. Some checks need nothing but the log — no two
 * clients may have been told they bought the same seat, no seat may be held after it was sold, one
 * id may not have been acknowledged with two different answers, and every acknowledgement must name
 * what it granted — and the rest compare the ledger with Postgres (`checkAcknowledged`): every
 * acknowledgement must be there as it was answered, and no request the inventory refused may have
 * been carried out.
 */
import { LatencyHistogram, type LatencySummary } from '../stress/histogram.js';
import type { ResponseRecord } from '../stress/response-log.js';
import type { Reader } from './inventory-checks.js';
import type { Violations } from './violations.js';
import type { ReservationRow } from '../../adapters/postgres/inventory-store.js';
import { keyDigest, strictPassKey } from '../../ingress/command-gate.js';
import { REFUSAL_TYPES } from '../../ingress/problems.js';

/** An answer a client got: to whom, and when it arrived (epoch ms, the client's clock). */
interface Answer {
  readonly customer: string;
  readonly at: number;
}

/** What a 201 to a hold granted. */
interface AckedHold extends Answer {
  readonly seats: readonly string[] | undefined;
  readonly pool: string | undefined;
  readonly quantity: number | undefined;
  readonly decidedAt: number | undefined;
}

/** What a 201 to a confirm or reserve granted. */
interface AckedReservation extends AckedHold {
  readonly hold: string | undefined;
}

/** Counts of what the logs held, for the report. */
export interface LedgerCounts {
  readonly lines: number;
  readonly other_events: number;
  /** Distinct ids acknowledged. */
  readonly acknowledged: { readonly holds: number; readonly reservations: number; readonly releases: number };
  /** Requests whose last answer was a refusal by the inventory (409/422), each looked up by its key. */
  readonly refused: number;
  readonly status: Record<string, number>;
  /** Latency of 409 answers (invariant 5: losers answered at once). */
  readonly loser_latency_ms: LatencySummary;
}

const count = (items: Iterable<unknown>) => {
  let n = 0;
  for (const _ of items) n += 1;
  return n;
};

const sameSeats = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

/** What an answer granted, whoever it went to and whenever it was decided: equal for a replayed answer. */
const grantKey = (a: AckedHold | AckedReservation) =>
  JSON.stringify([a.customer, a.seats && [...a.seats].sort(), a.pool, a.quantity, 'hold' in a ? a.hold : undefined]);

const describeGrant = (a: AckedHold | AckedReservation) =>
  `to ${a.customer} (${a.pool === undefined ? `seats ${a.seats?.join(',') ?? 'not given'}` : `${a.quantity} × ${a.pool}`}` +
  `${'hold' in a && a.hold !== undefined ? `, hold ${a.hold}` : ''})`;

const isReservationOp = (op: ResponseRecord['op']) => op === 'confirm' || op === 'reserve';

/** The last answer to one request (one customer's Idempotency-Key): the one its client went by. */
interface LastAnswer {
  readonly customer: string;
  readonly key: string | undefined;
  readonly op: ResponseRecord['op'];
  readonly attempt: number;
  readonly status: number;
  readonly error: string | undefined;
  readonly at: number;
}

/** A request whose last answer was a refusal by the inventory. */
export type Refusal = LastAnswer & { readonly key: string; readonly error: string };

/**
 * Every distinct answer per id. A retry replayed with the same Idempotency-Key gives the same
 * answer and is kept once (the earliest to arrive); two different answers for one id are both
 * kept, checked against Postgres each, and are a violation themselves (`checkClientView`).
 */
class Answers<A extends Answer> {
  private readonly byId = new Map<string, Map<string, A>>();

  constructor(private readonly keyOf: (answer: A) => string) {}

  add(id: string, answer: A): void {
    const answers = this.byId.get(id) ?? new Map<string, A>();
    this.byId.set(id, answers);
    const key = this.keyOf(answer);
    const kept = answers.get(key);
    if (kept === undefined || answer.at < kept.at) answers.set(key, answer);
  }

  get ids(): number {
    return this.byId.size;
  }

  /** Every answer, with its id. */
  *entries(): Generator<[string, A]> {
    for (const [id, answers] of this.byId) for (const answer of answers.values()) yield [id, answer];
  }

  /** The ids that were answered more than one way, with their answers. */
  *conflicts(): Generator<[string, A[]]> {
    for (const [id, answers] of this.byId) if (answers.size > 1) yield [id, [...answers.values()]];
  }
}

export class AckLedger {
  readonly holds = new Answers<AckedHold>(grantKey);
  readonly reservations = new Answers<AckedReservation>(grantKey);
  readonly releases = new Answers<Answer>((r) => r.customer);
  /** Acknowledgements that name no hold or reservation: nothing can find them in Postgres. */
  private readonly unnamed: ResponseRecord[] = [];
  private readonly statuses = new Map<number, number>();
  private readonly losers = new LatencyHistogram();
  /** By customer and Idempotency-Key. */
  private readonly lastAnswers = new Map<string, LastAnswer>();
  /** Refusals logged without their Idempotency-Key (a log of an older `stress`): not judged. */
  private unkeyedRefusals = 0;
  private lines = 0;
  private otherEvents = 0;

  constructor(readonly eventId: string) {}

  /** Adds one record; false when it is of another event (and passed over). */
  add(record: ResponseRecord): boolean {
    this.lines += 1;
    if (record.event !== this.eventId) {
      this.otherEvents += 1;
      return false;
    }
    this.statuses.set(record.status, (this.statuses.get(record.status) ?? 0) + 1);
    if (record.status === 409) this.losers.recordMs(record.ms);
    if (record.status === 204 && record.op === 'release') this.addRelease(record);
    if (record.status === 201) this.addGrant(record);
    if (record.key !== undefined) this.addAnswer(record);
    // A DELETE carries no Idempotency-Key: a release's refusal is not judged, and needs none.
    else if (record.op !== 'release' && record.error !== undefined && REFUSAL_TYPES.has(record.error)) this.unkeyedRefusals += 1;
    return true;
  }

  /** Keeps the last attempt's answer of each request: an earlier refusal a retry turned into a 201 is no refusal. */
  private addAnswer(record: ResponseRecord): void {
    const id = `${record.customer}\n${record.key}`;
    const kept = this.lastAnswers.get(id);
    if (kept !== undefined && (kept.attempt > record.attempt || (kept.attempt === record.attempt && kept.at > record.at))) return;
    const { customer, key, op, attempt, status, error, at } = record;
    this.lastAnswers.set(id, { customer, key, op, attempt, status, error, at });
  }

  /** Requests whose last answer was a refusal by the inventory. */
  *refusals(): Generator<Refusal> {
    for (const answer of this.lastAnswers.values())
      if (answer.key !== undefined && answer.error !== undefined && REFUSAL_TYPES.has(answer.error)) yield answer as Refusal;
  }

  /** Why the refusal check is incomplete, if it is. */
  refusalsUnjudged(): string | undefined {
    if (this.unkeyedRefusals === 0) return undefined;
    return `${this.unkeyedRefusals} refusals in the response logs carry no Idempotency-Key (written by an older stress): whether they were carried out cannot be looked up`;
  }

  private addRelease(record: ResponseRecord): void {
    if (record.hold === undefined) this.unnamed.push(record);
    else this.releases.add(record.hold, { customer: record.customer, at: record.at });
  }

  private addGrant(record: ResponseRecord): void {
    const granted = {
      customer: record.customer,
      at: record.at,
      seats: record.seats,
      pool: record.pool,
      quantity: record.quantity,
      decidedAt: record.decidedAt,
    };
    if (isReservationOp(record.op)) {
      if (record.reservation) this.reservations.add(record.reservation, { ...granted, hold: record.hold });
      else this.unnamed.push(record);
    } else if (record.hold) this.holds.add(record.hold, granted);
    else this.unnamed.push(record);
  }

  counts(): LedgerCounts {
    return {
      lines: this.lines,
      other_events: this.otherEvents,
      acknowledged: { holds: this.holds.ids, reservations: this.reservations.ids, releases: this.releases.ids },
      refused: count(this.refusals()),
      status: Object.fromEntries([...this.statuses].sort(([a], [b]) => a - b).map(([k, v]) => [String(k), v])),
      loser_latency_ms: this.losers.summary(),
    };
  }

  /**
   * The checks that need only the log: acknowledgements that name nothing, ids answered two
   * different ways, and double sales and holds granted on sold seats, as clients saw them.
   */
  checkClientView(violations: Violations): void {
    this.checkUnnamed(violations);
    this.checkConflicts(violations);
    this.checkDoubleSales(violations);
  }

  private checkUnnamed(violations: Violations): void {
    for (const r of this.unnamed) {
      const what = isReservationOp(r.op) ? 'reservation' : 'hold';
      violations.add(
        'ack-missing',
        `a ${r.status} to ${r.customer} for ${r.op}${r.seat ? ` of ${r.seat}` : ''} names no ${what}: what it acknowledged cannot be found in Postgres`,
      );
    }
  }

  /** One id, two different answers: at most one of them can be in Postgres as it was answered. */
  private checkConflicts(violations: Violations): void {
    for (const [id, answers] of this.holds.conflicts()) {
      violations.add('ack-missing', `hold ${id} was acknowledged (201) differently: ${answers.map(describeGrant).join(' and ')}`);
    }
    for (const [id, answers] of this.reservations.conflicts()) {
      violations.add('ack-missing', `reservation ${id} was acknowledged (201) differently: ${answers.map(describeGrant).join(' and ')}`);
    }
    for (const [id, answers] of this.releases.conflicts()) {
      violations.add('ack-missing', `hold ${id} was released (204) to ${answers.map((r) => r.customer).join(' and ')}: it has one owner`);
    }
  }

  private checkDoubleSales(violations: Violations): void {
    const soldTo = new Map<string, { reservation: string; customer: string; at: number | undefined; hold: string | undefined }>();
    for (const [id, r] of this.reservations.entries()) {
      for (const seat of r.seats ?? []) {
        const first = soldTo.get(seat);
        if (first === undefined) soldTo.set(seat, { reservation: id, customer: r.customer, at: r.decidedAt, hold: r.hold });
        // Two answers for one reservation are a conflict (above), not a second sale.
        else if (first.reservation !== id)
          violations.add(
            'client-double-sale',
            `seat ${seat} was sold to ${first.customer} (${first.reservation}) and to ${r.customer} (${id})`,
          );
      }
    }
    for (const [id, h] of this.holds.entries()) {
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

/** Checks every answer against its row (undefined when it has none), looking rows up `CHUNK` ids at a time. */
async function eachRow<A extends Answer, R>(
  answers: Answers<A>,
  lookup: (ids: string[]) => Promise<Map<string, R>>,
  check: (id: string, answer: A, row: R | undefined) => void,
): Promise<void> {
  const all = [...answers.entries()];
  for (let i = 0; i < all.length; i += CHUNK) {
    const chunk = all.slice(i, i + CHUNK);
    const rows = await lookup([...new Set(chunk.map(([id]) => id))]);
    for (const [id, answer] of chunk) check(id, answer, rows.get(id));
  }
}

const byId = <R, K extends keyof R>(rows: R[], key: K) => new Map(rows.map((r) => [r[key] as string, r]));

/** The columns of a hold's or a reservation's row that a 201 is compared with. */
interface GrantRow {
  event_id: string;
  customer: string;
  /** A hold's own id; a reservation's hold. */
  hold_id: string;
  seats: string[];
  pool_id: string | null;
  quantity: number;
}

/** How a 201 differs from its row in seats or places; undefined when it does not. */
function grantDiffers(acked: AckedHold, row: GrantRow): string | undefined {
  if (acked.pool !== undefined) {
    if (row.pool_id === acked.pool && row.quantity === acked.quantity) return undefined;
    return `${acked.quantity} × ${acked.pool} but has ${row.quantity} × ${row.pool_id ?? 'seats'}`;
  }
  if (acked.seats === undefined || sameSeats(acked.seats, row.seats)) return undefined;
  return `seats ${acked.seats.join(',')} but has ${row.seats.join(',')}`;
}

/**
 * Every acknowledged hold, reservation and release must be in Postgres, as it was answered.
 * `ttlSlackMs`: how far a 204's arrival may precede its hold's expiry and still be the answer to a
 * hold that had expired (clock skew between client and engine).
 */
export async function checkAcknowledged(
  db: Reader,
  eventId: string,
  ledger: AckLedger,
  violations: Violations,
  ttlSlackMs: number,
): Promise<void> {
  await checkHolds(db, eventId, ledger.holds, violations);
  await checkReservations(db, eventId, ledger.reservations, violations);
  await checkReleases(db, eventId, ledger.releases, violations, ttlSlackMs);
  await checkRefusals(db, eventId, ledger, violations);
}

/**
 * A refusal must be true: the shard records the success of every command it carries out under the
 * command's key — the digest of the customer and the Idempotency-Key (`keyDigest`), so a retry is
 * answered the same after a take-over — and records nothing for a refusal. A record under the key
 * of a request whose client was last told 409 or 422 is a buyer told "no" for something done in
 * their name: a hold they do not know of, or a seat they bought and were told they had not.
 */
async function checkRefusals(db: Reader, eventId: string, ledger: AckLedger, violations: Violations): Promise<void> {
  const refused = [...ledger.refusals()];
  for (let i = 0; i < refused.length; i += CHUNK) {
    // A best-available hold over several shards asks each one first under its strict-pass key.
    const byDigest = new Map(
      refused.slice(i, i + CHUNK).flatMap((r) => {
        const digest = keyDigest(r.customer, r.key);
        return [
          [digest, r],
          [strictPassKey(digest), r],
        ] as const;
      }),
    );
    const { rows } = await db.query<{ key: string; customer: string; shard: number }>(
      'SELECT key, customer, shard FROM idempotency_keys WHERE event_id = $1 AND key = ANY($2)',
      [eventId, [...byDigest.keys()]],
    );
    for (const row of rows) {
      const r = byDigest.get(row.key);
      if (r === undefined || r.customer !== row.customer) continue;
      violations.add(
        'refusal-untrue',
        `${r.customer}'s ${r.op} (Idempotency-Key ${r.key}) was answered ${r.status} ${r.error} (attempt ${r.attempt}), but shard ${row.shard} carried it out`,
      );
    }
  }
}

interface HoldRow extends GrantRow {
  state: string;
  /** When the hold's time ran out (epoch ms): its expiry, or the close of its sale if that ended it earlier. */
  expires_ms: number;
}

const lookUpHolds = (db: Reader) => async (ids: string[]) =>
  byId(
    (
      await db.query<HoldRow>(
        `SELECT hold_id, event_id, customer, seats, pool_id, quantity, state, (extract(epoch FROM least(expires_at, ended_at)) * 1000)::float8 AS expires_ms
           FROM holds WHERE hold_id = ANY($1)`,
        [ids],
      )
    ).rows,
    'hold_id',
  );

/** A 201 must be in Postgres as it was answered: to that customer, in this event (of that hold), with those seats or places. */
function checkGrant(
  what: 'hold' | 'reservation',
  id: string,
  acked: AckedHold | AckedReservation,
  row: GrantRow | undefined,
  eventId: string,
  violations: Violations,
): void {
  if (row === undefined) {
    violations.add('ack-missing', `${what} ${id} (201 to ${acked.customer}) is not in the database`);
    return;
  }
  const ackedHold = 'hold' in acked ? acked.hold : undefined;
  if (row.event_id !== eventId || row.customer !== acked.customer || (ackedHold !== undefined && ackedHold !== row.hold_id)) {
    const ofHold = (hold: string | undefined) => (what === 'reservation' ? ` (hold ${hold})` : '');
    violations.add(
      'ack-missing',
      `${what} ${id} was answered to ${acked.customer}${ofHold(ackedHold)} but is ${row.customer}'s${ofHold(row.hold_id)} in event ${row.event_id}`,
    );
    return;
  }
  const differs = grantDiffers(acked, row);
  if (differs) violations.add('ack-missing', `${what} ${id} was answered with ${differs}`);
}

async function checkHolds(db: Reader, eventId: string, holds: Answers<AckedHold>, violations: Violations): Promise<void> {
  await eachRow(holds, lookUpHolds(db), (id, acked, row) => checkGrant('hold', id, acked, row, eventId, violations));
}

async function checkReservations(
  db: Reader,
  eventId: string,
  reservations: Answers<AckedReservation>,
  violations: Violations,
): Promise<void> {
  const lookUp = async (ids: string[]) =>
    byId(
      (
        await db.query<Omit<ReservationRow, 'confirmed_at'>>(
          'SELECT reservation_id, event_id, hold_id, customer, seats, pool_id, quantity FROM reservations WHERE reservation_id = ANY($1)',
          [ids],
        )
      ).rows,
      'reservation_id',
    );
  await eachRow(reservations, lookUp, (id, acked, row) => checkGrant('reservation', id, acked, row, eventId, violations));
}

/**
 * A 204 to DELETE says the hold is gone: released by that request, or already expired (the
 * ingress answers 204 to a hold that expired before the release was decided — never to another
 * customer's hold). So the hold must be the customer's, in this event, and `released`; or
 * `expired`, if the 204 arrived no earlier than its expiry (less the slack for clock skew) — or
 * than the commit that ended it, when its sale closed first: a release answered before then was
 * decided while the hold was live, and Postgres lost it.
 */
async function checkReleases(
  db: Reader,
  eventId: string,
  releases: Answers<Answer>,
  violations: Violations,
  ttlSlackMs: number,
): Promise<void> {
  await eachRow(releases, lookUpHolds(db), (id, acked, row) => {
    const released = `hold ${id} was released (204 to ${acked.customer})`;
    if (row === undefined) violations.add('ack-missing', `${released} but is not in the database`);
    else if (row.event_id !== eventId || row.customer !== acked.customer) {
      violations.add('ack-missing', `${released} but is ${row.customer}'s in event ${row.event_id}`);
    } else if (row.state === 'expired') {
      const early = row.expires_ms - acked.at;
      if (early > ttlSlackMs) {
        violations.add('ack-missing', `${released} ${Math.round(early)} ms before it expired, but is expired, not released`);
      }
    } else if (row.state !== 'released') violations.add('ack-missing', `${released} but is ${row.state}`);
  });
}
