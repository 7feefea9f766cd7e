/**
 * The event layout: sections of rows of numbered seats (assigned seating) and general-admission
 * pools with a capacity. Validation is strict and precise because a layout, once on sale, is the
 * key of every seat id and of the seat → shard mapping: it must be right before anything is sold.
 */
import type { SeatId } from './commands.js';

/** A row of `seats` seats numbered 1..seats. */
export interface RowLayout {
  /** Short id, `[A-Za-z0-9]+`, unique within its section. */
  readonly id: string;
  readonly seats: number;
}

/** A section of assigned seating; its rows are listed best first. */
export interface SectionLayout {
  /** Short id, `[A-Za-z0-9]+`, unique among sections and pools. */
  readonly id: string;
  readonly name?: string;
  readonly priceTier?: string;
  readonly rows: readonly RowLayout[];
}

/** A general-admission pool: `capacity` interchangeable places. */
export interface PoolLayout {
  /** Short id, `[A-Za-z0-9]+`, unique among sections and pools. */
  readonly id: string;
  readonly name?: string;
  readonly capacity: number;
}

/** The whole event: sections (best first) and pools. */
export interface EventLayout {
  readonly sections: readonly SectionLayout[];
  readonly pools: readonly PoolLayout[];
}

/** A layout that passed `validateLayout` (normalized: unknown fields dropped, frozen). */
export type Layout = EventLayout;

/** One problem found in a layout: where (`sections[2].rows[0].seats`) and what. */
export interface LayoutIssue {
  readonly path: string;
  readonly message: string;
}

export type LayoutValidation =
  { readonly ok: true; readonly layout: Layout } | { readonly ok: false; readonly errors: readonly LayoutIssue[] };

/** Layout limits. They keep one event's inventory within what a handful of shard actors hold in memory. */
export const LAYOUT_LIMITS = Object.freeze({
  /** Longest id of a section, row or pool. */
  maxIdLength: 16,
  /** Longest display name or price tier. */
  maxNameLength: 200,
  maxSeatsPerRow: 10_000,
  maxSeatsTotal: 1_000_000,
  maxPoolCapacity: 10_000_000,
  maxSections: 10_000,
  maxPools: 1_000,
});

const ID_PATTERN = /^[A-Za-z0-9]+$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** The number of code points of `text` (a surrogate pair counts once). */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * Validates and normalizes an event layout. Every problem is reported with its path, not just the
 * first one, so an operator fixing a `TicketEvent` sees them all at once.
 */
export function validateLayout(input: unknown): LayoutValidation {
  const errors: LayoutIssue[] = [];
  const issue = (path: string, message: string): void => {
    errors.push({ path, message });
  };
  if (!isRecord(input)) {
    return { ok: false, errors: [{ path: '', message: `layout must be an object, got ${describe(input)}` }] };
  }
  const rawSections = input['sections'] ?? [];
  const rawPools = input['pools'] ?? [];
  if (!Array.isArray(rawSections)) issue('sections', `must be an array, got ${describe(rawSections)}`);
  if (!Array.isArray(rawPools)) issue('pools', `must be an array, got ${describe(rawPools)}`);
  const sectionList: unknown[] = Array.isArray(rawSections) ? rawSections : [];
  const poolList: unknown[] = Array.isArray(rawPools) ? rawPools : [];
  if (Array.isArray(rawSections) && Array.isArray(rawPools) && sectionList.length === 0 && poolList.length === 0) {
    issue('', 'layout has no sections and no pools: there is nothing to sell');
  }
  if (sectionList.length > LAYOUT_LIMITS.maxSections)
    issue('sections', `at most ${LAYOUT_LIMITS.maxSections} sections, got ${sectionList.length}`);
  if (poolList.length > LAYOUT_LIMITS.maxPools) issue('pools', `at most ${LAYOUT_LIMITS.maxPools} pools, got ${poolList.length}`);

  const checkId = (path: string, value: unknown): value is string => {
    if (typeof value !== 'string') {
      issue(path, `must be a string, got ${describe(value)}`);
      return false;
    }
    if (value.length === 0 || value.length > LAYOUT_LIMITS.maxIdLength || !ID_PATTERN.test(value)) {
      issue(
        path,
        `must be 1-${LAYOUT_LIMITS.maxIdLength} letters or digits (no '-', it separates the parts of a seat id), got ${describe(value)}`,
      );
      return false;
    }
    return true;
  };
  const checkText = (path: string, value: unknown): value is string | undefined => {
    if (value === undefined) return true;
    // Characters are code points, as the CRD's maxLength counts them (an emoji is one, not two
    // UTF-16 units): a name the API server admitted must not fail here.
    if (typeof value !== 'string' || codePoints(value) > LAYOUT_LIMITS.maxNameLength) {
      issue(path, `must be a string of at most ${LAYOUT_LIMITS.maxNameLength} characters, got ${describe(value)}`);
      return false;
    }
    return true;
  };

  /** Ids of sections and pools share one namespace: both appear in URLs and subjects. */
  const unitIds = new Map<string, string>();
  const claimId = (path: string, id: string, what: string): void => {
    const previous = unitIds.get(id);
    if (previous !== undefined) issue(path, `duplicate id ${JSON.stringify(id)}: ${what} id already used by ${previous}`);
    else unitIds.set(id, path);
  };

  let totalSeats = 0;
  const sections: SectionLayout[] = [];
  sectionList.forEach((rawSection, s) => {
    const at = `sections[${s}]`;
    if (!isRecord(rawSection)) {
      issue(at, `must be an object, got ${describe(rawSection)}`);
      return;
    }
    const id = rawSection['id'];
    const idOk = checkId(`${at}.id`, id);
    if (idOk) claimId(`${at}.id`, id, 'section');
    const name = rawSection['name'];
    const priceTier = rawSection['priceTier'];
    const nameOk = checkText(`${at}.name`, name);
    const tierOk = checkText(`${at}.priceTier`, priceTier);
    const rawRows = rawSection['rows'];
    if (!Array.isArray(rawRows)) {
      issue(`${at}.rows`, `must be an array, got ${describe(rawRows)}`);
      return;
    }
    if (rawRows.length === 0) issue(`${at}.rows`, 'section has no rows');
    const rowIds = new Map<string, number>();
    const rows: RowLayout[] = [];
    rawRows.forEach((rawRow: unknown, r) => {
      const rowAt = `${at}.rows[${r}]`;
      if (!isRecord(rawRow)) {
        issue(rowAt, `must be an object, got ${describe(rawRow)}`);
        return;
      }
      const rowId = rawRow['id'];
      const rowIdOk = checkId(`${rowAt}.id`, rowId);
      if (rowIdOk) {
        const previous = rowIds.get(rowId);
        if (previous !== undefined) issue(`${rowAt}.id`, `duplicate row id ${JSON.stringify(rowId)} in section (also rows[${previous}])`);
        else rowIds.set(rowId, r);
      }
      const seats = rawRow['seats'];
      let seatsOk = false;
      if (typeof seats !== 'number' || !Number.isInteger(seats)) issue(`${rowAt}.seats`, `must be an integer, got ${describe(seats)}`);
      else if (seats <= 0) issue(`${rowAt}.seats`, `row is empty: must have at least 1 seat, got ${seats}`);
      else if (seats > LAYOUT_LIMITS.maxSeatsPerRow)
        issue(`${rowAt}.seats`, `at most ${LAYOUT_LIMITS.maxSeatsPerRow} seats per row, got ${seats}`);
      else seatsOk = true;
      if (seatsOk) totalSeats += seats as number;
      if (rowIdOk && seatsOk) rows.push(Object.freeze({ id: rowId, seats: seats as number }));
    });
    if (idOk && nameOk && tierOk) {
      const section: SectionLayout = {
        id,
        ...(name === undefined ? {} : { name }),
        ...(priceTier === undefined ? {} : { priceTier }),
        rows: Object.freeze(rows),
      };
      sections.push(Object.freeze(section));
    }
  });
  if (totalSeats > LAYOUT_LIMITS.maxSeatsTotal) {
    issue('sections', `at most ${LAYOUT_LIMITS.maxSeatsTotal} seats in one event, got ${totalSeats}`);
  }

  const pools: PoolLayout[] = [];
  poolList.forEach((rawPool, p) => {
    const at = `pools[${p}]`;
    if (!isRecord(rawPool)) {
      issue(at, `must be an object, got ${describe(rawPool)}`);
      return;
    }
    const id = rawPool['id'];
    const idOk = checkId(`${at}.id`, id);
    if (idOk) claimId(`${at}.id`, id, 'pool');
    const name = rawPool['name'];
    const nameOk = checkText(`${at}.name`, name);
    const capacity = rawPool['capacity'];
    let capacityOk = false;
    if (typeof capacity !== 'number' || !Number.isInteger(capacity))
      issue(`${at}.capacity`, `must be an integer, got ${describe(capacity)}`);
    else if (capacity <= 0) issue(`${at}.capacity`, `must be at least 1, got ${capacity}`);
    else if (capacity > LAYOUT_LIMITS.maxPoolCapacity)
      issue(`${at}.capacity`, `at most ${LAYOUT_LIMITS.maxPoolCapacity} places per pool, got ${capacity}`);
    else capacityOk = true;
    if (idOk && nameOk && capacityOk) {
      pools.push(Object.freeze({ id, ...(name === undefined ? {} : { name }), capacity: capacity as number }));
    }
  });

  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, layout: Object.freeze({ sections: Object.freeze(sections), pools: Object.freeze(pools) }) };
}

/** The parts of a seat id. */
export interface SeatAddress {
  readonly section: string;
  readonly row: string;
  /** 1-based seat number within the row. */
  readonly number: number;
}

/** Builds the seat id `<section>-<row>-<number>`. */
export function seatIdOf(section: string, row: string, number: number): SeatId {
  return `${section}-${row}-${number}`;
}

/**
 * Parses `<section>-<row>-<number>` (number in canonical decimal, no sign or leading zero). Returns
 * null for anything else; whether the seat exists is a question for the layout.
 */
export function parseSeatId(seatId: string): SeatAddress | null {
  const last = seatId.lastIndexOf('-');
  if (last <= 0) return null;
  const middle = seatId.lastIndexOf('-', last - 1);
  if (middle <= 0 || middle + 1 === last) return null;
  const number = parseSeatNumber(seatId, last + 1);
  if (number < 0) return null;
  const section = seatId.slice(0, middle);
  const row = seatId.slice(middle + 1, last);
  if (!ID_PATTERN.test(section) || !ID_PATTERN.test(row)) return null;
  return { section, row, number };
}

/** Parses the canonical decimal seat number starting at `from`; -1 when malformed. No allocation: it sits on the hot path. */
export function parseSeatNumber(text: string, from: number): number {
  const length = text.length;
  if (from >= length || length - from > 6) return -1;
  const first = text.charCodeAt(from);
  if (first < 49 || first > 57) return -1; // 1-9: no leading zero, no seat 0
  let value = first - 48;
  for (let i = from + 1; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    value = value * 10 + (c - 48);
  }
  return value;
}

/** Seats, general-admission places, and both together. */
export interface Capacity {
  readonly seats: number;
  readonly places: number;
  readonly total: number;
}

/** Total capacity of the event. */
export function totalCapacity(layout: EventLayout): Capacity {
  let seats = 0;
  for (const section of layout.sections) for (const row of section.rows) seats += row.seats;
  let places = 0;
  for (const pool of layout.pools) places += pool.capacity;
  return { seats, places, total: seats + places };
}

/** Every seat id of a section, best row first, then by seat number; undefined for an unknown section. */
export function seatsOfSection(layout: EventLayout, sectionId: string): SeatId[] | undefined {
  const section = layout.sections.find((s) => s.id === sectionId);
  if (section === undefined) return undefined;
  const seats: SeatId[] = [];
  for (const row of section.rows) for (let n = 1; n <= row.seats; n++) seats.push(seatIdOf(section.id, row.id, n));
  return seats;
}

/** Number of seats of a section (0 for an unknown one). */
export function sectionCapacity(layout: EventLayout, sectionId: string): number {
  const section = layout.sections.find((s) => s.id === sectionId);
  let seats = 0;
  if (section !== undefined) for (const row of section.rows) seats += row.seats;
  return seats;
}
