/**
 * Which shard owns which seat: a pure, stable function of (layout, shard count). See ADR 0003.
 */
import { SentinelError } from '../errors.js';
import type { SeatId } from './commands.js';
import { parseSeatNumber, seatIdOf, type EventLayout, type Layout, type PoolLayout, type SectionLayout } from './layout.js';

/** Names the mapping algorithm; persist it beside the shard count so a future algorithm cannot silently remap a live event. */
export const SHARD_MAP_ALGORITHM = 'contiguous-weighted-v1';

/** The shard count does not fit the layout. */
export class ShardMapError extends SentinelError {
  constructor(message: string) {
    super('shard_count_invalid', message);
  }
}

/** One shard's share of the layout. */
export interface ShardSummary {
  readonly shard: number;
  /** Global row indexes [firstRow, endRow) in layout order. */
  readonly firstRow: number;
  readonly endRow: number;
  /** Pool indexes [firstPool, endPool) in layout order. */
  readonly firstPool: number;
  readonly endPool: number;
  readonly seats: number;
  readonly places: number;
  /** seats + places: what the partition balances. */
  readonly weight: number;
}

/** A row located in the layout. */
export interface RowRef {
  /** Global row index in layout order. */
  readonly index: number;
  readonly section: string;
  readonly row: string;
  readonly seats: number;
  readonly shard: number;
}

/** The seat → shard mapping of one layout and shard count. Immutable; cache it per event. */
export interface ShardMap {
  readonly algorithm: string;
  readonly layout: Layout;
  readonly shardCount: number;
  readonly shards: readonly ShardSummary[];
  /** Total number of rows in the layout. */
  readonly rowCount: number;
  /** Owning shard of a seat; undefined for a malformed or unknown seat id. */
  shardOfSeat(seatId: string): number | undefined;
  /** Owning shard of a pool; undefined for an unknown pool. */
  shardOfPool(pool: string): number | undefined;
  /** Shards holding rows of a section, best row first (the order to ask them for best-available); undefined for an unknown section. */
  shardsOfSection(section: string): readonly number[] | undefined;
  /** The row of a seat id (the number is not checked); undefined when unknown. */
  rowOfSeat(seatId: string): RowRef | undefined;
  /** Every seat id a shard owns, in layout order. */
  seatsOfShard(shard: number): SeatId[];
  /** The pools a shard owns. */
  poolsOfShard(shard: number): readonly PoolLayout[];
  /** The slice of the layout a shard owns (its rows, grouped by section, and its pools). */
  layoutOfShard(shard: number): EventLayout;
  /** Longest row of a section in the whole layout (0 for an unknown section). */
  longestRowOfSection(section: string): number;
}

/** Why `shardCount` cannot be used with `layout`, or undefined when it can. */
export function checkShardCount(layout: EventLayout, shardCount: number): string | undefined {
  let units = layout.pools.length;
  for (const section of layout.sections) units += section.rows.length;
  if (!Number.isInteger(shardCount) || shardCount < 1) return `shard count must be an integer ≥ 1, got ${String(shardCount)}`;
  if (shardCount > units) {
    return `shard count ${shardCount} exceeds the ${units} rows and pools of the layout: rows are never split, so some shard would own nothing`;
  }
  return undefined;
}

const cache = new WeakMap<Layout, Map<number, ShardMap>>();

/**
 * Maps a validated layout onto `shardCount` shards.
 *
 * The units of the mapping are rows (never split, so adjacent seats always share a shard and
 * best-available is decided by one actor) and pools (one unit each). Units keep the layout order
 * (sections best first, their rows best first, then pools) and are cut into `shardCount`
 * contiguous, non-empty runs, weighted by seats (rows) and capacity (pools): cut k falls on the
 * unit boundary nearest to k·W/shardCount, where W is the total weight, moved only as far as
 * needed to leave every shard at least one unit. Hence every shard weighs at most
 * W/shardCount + (heaviest unit), a section's rows stay in one shard or in consecutive shards
 * (best rows in the lowest), and the result depends on nothing but (layout, shardCount).
 *
 * O(rows + pools) time; results are cached per layout object. Throws ShardMapError for a bad
 * shard count (see `checkShardCount`).
 */
export function shardMap(layout: Layout, shardCount: number): ShardMap {
  let perLayout = cache.get(layout);
  const cached = perLayout?.get(shardCount);
  if (cached !== undefined) return cached;
  const problem = checkShardCount(layout, shardCount);
  if (problem !== undefined) throw new ShardMapError(problem);
  const map = new ContiguousShardMap(layout, shardCount);
  if (perLayout === undefined) {
    perLayout = new Map();
    cache.set(layout, perLayout);
  }
  perLayout.set(shardCount, map);
  return map;
}

/**
 * Cut points of a contiguous partition of `weights` into `parts` non-empty runs: returns
 * `parts + 1` boundaries, the first 0 and the last weights.length.
 */
export function partitionContiguous(weights: ArrayLike<number>, parts: number): number[] {
  const units = weights.length;
  const prefix = new Float64Array(units + 1);
  for (let i = 0; i < units; i++) prefix[i + 1] = prefix[i]! + weights[i]!;
  const total = prefix[units]!;
  const bounds = [0];
  let i = 0;
  for (let k = 1; k < parts; k++) {
    const target = (total * k) / parts;
    while (i < units && prefix[i]! < target) i++;
    // prefix[i] ≥ target > prefix[i-1] (or i is the end): take the nearer boundary, the earlier on a tie.
    let cut = i > 0 && target - prefix[i - 1]! <= prefix[i]! - target ? i - 1 : i;
    const low = bounds[k - 1]! + 1;
    const high = units - (parts - k);
    if (cut < low) cut = low;
    if (cut > high) cut = high;
    bounds.push(cut);
  }
  bounds.push(units);
  return bounds;
}

class ContiguousShardMap implements ShardMap {
  readonly algorithm = SHARD_MAP_ALGORITHM;
  readonly layout: Layout;
  readonly shardCount: number;
  readonly shards: readonly ShardSummary[];
  readonly rowCount: number;

  /** Per global row: section index, row id, seat count, owning shard. */
  private readonly rowSection: Int32Array;
  private readonly rowIds: string[];
  private readonly rowSeats: Int32Array;
  private readonly unitShard: Int32Array;
  /** Per section index: row id → global row index (nested, so no key string is built per row: 1,000,000 rows map in ~0.2 s). */
  private readonly rowIndex: Map<string, number>[] = [];
  private readonly sectionIndex = new Map<string, number>();
  private readonly poolIndex = new Map<string, number>();
  private readonly sectionShards: (readonly number[])[] = [];
  private readonly sectionLongestRow: number[] = [];

  constructor(layout: Layout, shardCount: number) {
    this.layout = layout;
    this.shardCount = shardCount;
    let rows = 0;
    for (const section of layout.sections) rows += section.rows.length;
    this.rowCount = rows;
    const units = rows + layout.pools.length;
    this.rowSection = new Int32Array(rows);
    this.rowSeats = new Int32Array(rows);
    this.rowIds = new Array<string>(rows);
    const weights = new Float64Array(units);
    let r = 0;
    layout.sections.forEach((section, s) => {
      this.sectionIndex.set(section.id, s);
      const rowsOfSection = new Map<string, number>();
      this.rowIndex.push(rowsOfSection);
      let longest = 0;
      for (const row of section.rows) {
        this.rowSection[r] = s;
        this.rowSeats[r] = row.seats;
        this.rowIds[r] = row.id;
        rowsOfSection.set(row.id, r);
        weights[r] = row.seats;
        if (row.seats > longest) longest = row.seats;
        r++;
      }
      this.sectionLongestRow.push(longest);
    });
    layout.pools.forEach((pool, p) => {
      this.poolIndex.set(pool.id, p);
      weights[rows + p] = pool.capacity;
    });

    const bounds = partitionContiguous(weights, shardCount);
    this.unitShard = new Int32Array(units);
    const shards: ShardSummary[] = [];
    for (let k = 0; k < shardCount; k++) {
      const start = bounds[k]!;
      const end = bounds[k + 1]!;
      let seats = 0;
      let places = 0;
      for (let u = start; u < end; u++) {
        this.unitShard[u] = k;
        if (u < rows) seats += weights[u]!;
        else places += weights[u]!;
      }
      shards.push(
        Object.freeze({
          shard: k,
          firstRow: Math.min(start, rows),
          endRow: Math.min(end, rows),
          firstPool: Math.max(start, rows) - rows,
          endPool: Math.max(end, rows) - rows,
          seats,
          places,
          weight: seats + places,
        }),
      );
    }
    this.shards = Object.freeze(shards);
    r = 0;
    for (const section of layout.sections) {
      const owners: number[] = [];
      for (let i = 0; i < section.rows.length; i++, r++) {
        const shard = this.unitShard[r]!;
        if (owners[owners.length - 1] !== shard) owners.push(shard);
      }
      this.sectionShards.push(Object.freeze(owners));
    }
  }

  /** Global row index of the row part of `seatId` (whose last '-' is at `last`), or undefined. */
  private rowIndexOf(seatId: string, last: number): number | undefined {
    const middle = seatId.lastIndexOf('-', last - 1);
    if (middle <= 0) return undefined;
    const section = this.sectionIndex.get(seatId.slice(0, middle));
    return section === undefined ? undefined : this.rowIndex[section]!.get(seatId.slice(middle + 1, last));
  }

  rowOfSeat(seatId: string): RowRef | undefined {
    const last = seatId.lastIndexOf('-');
    if (last <= 0) return undefined;
    const index = this.rowIndexOf(seatId, last);
    if (index === undefined) return undefined;
    return {
      index,
      section: this.layout.sections[this.rowSection[index]!]!.id,
      row: this.rowIds[index]!,
      seats: this.rowSeats[index]!,
      shard: this.unitShard[index]!,
    };
  }

  shardOfSeat(seatId: string): number | undefined {
    const last = seatId.lastIndexOf('-');
    if (last <= 0) return undefined;
    const index = this.rowIndexOf(seatId, last);
    if (index === undefined) return undefined;
    const number = parseSeatNumber(seatId, last + 1);
    if (number < 1 || number > this.rowSeats[index]!) return undefined;
    return this.unitShard[index];
  }

  shardOfPool(pool: string): number | undefined {
    const index = this.poolIndex.get(pool);
    return index === undefined ? undefined : this.unitShard[this.rowCount + index];
  }

  shardsOfSection(section: string): readonly number[] | undefined {
    const index = this.sectionIndex.get(section);
    return index === undefined ? undefined : this.sectionShards[index];
  }

  longestRowOfSection(section: string): number {
    const index = this.sectionIndex.get(section);
    return index === undefined ? 0 : this.sectionLongestRow[index]!;
  }

  private summary(shard: number): ShardSummary {
    const summary = this.shards[shard];
    if (summary === undefined) throw new ShardMapError(`no shard ${shard}: the map has shards 0..${this.shardCount - 1}`);
    return summary;
  }

  seatsOfShard(shard: number): SeatId[] {
    const { firstRow, endRow } = this.summary(shard);
    const seats: SeatId[] = [];
    for (let r = firstRow; r < endRow; r++) {
      const section = this.layout.sections[this.rowSection[r]!]!.id;
      const row = this.rowIds[r]!;
      const count = this.rowSeats[r]!;
      for (let n = 1; n <= count; n++) seats.push(seatIdOf(section, row, n));
    }
    return seats;
  }

  poolsOfShard(shard: number): readonly PoolLayout[] {
    const { firstPool, endPool } = this.summary(shard);
    return this.layout.pools.slice(firstPool, endPool);
  }

  layoutOfShard(shard: number): EventLayout {
    const { firstRow, endRow } = this.summary(shard);
    const sections: SectionLayout[] = [];
    let r = 0;
    for (const section of this.layout.sections) {
      const start = Math.max(r, firstRow);
      const end = Math.min(r + section.rows.length, endRow);
      if (start < end) sections.push({ ...section, rows: section.rows.slice(start - r, end - r) });
      r += section.rows.length;
    }
    return { sections, pools: this.poolsOfShard(shard) };
  }
}
